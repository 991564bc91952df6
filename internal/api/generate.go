// Package api holds the wire protocol of circuit: the protobuf definitions of
// its gRPC services and the code generated from them. Nothing here is written
// by hand except this file and circuit.proto.
package api

// The generators are pinned: protoc from Debian's protobuf-compiler, and
//   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative circuit.proto
