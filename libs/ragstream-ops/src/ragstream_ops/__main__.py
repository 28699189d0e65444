from ragstream_ops.cli import main

main()
