from notify_sql.cli import main

main()
