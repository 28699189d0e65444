from ragstream_embedder.main import main

main()
