from mnist_cli.cli.app import main

main()
