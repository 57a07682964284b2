from genre_lab.cli import main

main()
