from surefoot.cli.main import main

main()
