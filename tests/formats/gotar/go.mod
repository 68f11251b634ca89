module modelseal.dev/gotar

go 1.19
