from stylenorm.cli import main

main()
