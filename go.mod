module github.com/circuit-project/circuit

go 1.26.8
