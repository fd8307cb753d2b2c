from auto_label.cli.main import main

main()
