package testenv_test

import (
	"fmt"
	"os"

	"github.com/mqttstore/mqttstore/internal/testenv"
)

// A test asks for a service with testenv.Postgres(t) and the like. Whether an absent service
// skips or fails the test is decided by MQTTSTORE_REQUIRE_SERVICES, which `make test` sets.
func ExampleRequired() {
	defer os.Setenv(testenv.RequireEnv, os.Getenv(testenv.RequireEnv))
	os.Setenv(testenv.RequireEnv, "1")
	fmt.Println("missing services fail tests:", testenv.Required())
	os.Setenv(testenv.RequireEnv, "0")
	fmt.Println("missing services fail tests:", testenv.Required())
	// Output:
	// missing services fail tests: true
	// missing services fail tests: false
}
