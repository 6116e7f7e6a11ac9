from doctagger.cli import main

main()
