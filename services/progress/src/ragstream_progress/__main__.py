from ragstream_progress.main import main

main()
