from ragstream_cli.app import main

main()
