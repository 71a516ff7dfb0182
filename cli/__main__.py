from milvus_backup.cli.main import main

main()
