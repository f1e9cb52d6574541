from cifar_bench.cli import main

main()
