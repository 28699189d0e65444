from ragstream_chat.main import main

main()
