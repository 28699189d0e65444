from ragstream_gateway.main import main

main()
