from ragstream_parser.main import main

main()
