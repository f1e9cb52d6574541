import sys

from cifar_bench.bench.command import main

main(sys.argv[1:])
