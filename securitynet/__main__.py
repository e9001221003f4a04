from securitynet.cli import main

main()
