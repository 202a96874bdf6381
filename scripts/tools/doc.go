// Package tools holds small programs that scripts/services builds and runs: they are not part of
// the library, and live in their own module so the library's go.mod stays clean.
//
//   - roundtrip: the readiness checks of the Cassandra, DynamoDB and MongoDB-protocol services
//     (write a value, read it back).
//   - ferretdb: a MongoDB-protocol server, FerretDB embedded with its SQLite backend.
package tools
