package backendtest_test

import (
	"fmt"
	"strings"

	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
)

// A SQL store's CustomActions.Record: one INSERT binding each placeholder the suite asks for
// into a column of the same name (Setup creates the table, Read selects it back).
func ExampleCustomActions() {
	custom := &backendtest.CustomActions{
		Record: func(vars []string) hook.RuleAction {
			return hook.RuleAction{SQL: []string{
				"INSERT INTO backendtest_record (" + strings.Join(vars, ", ") + ") VALUES (${" + strings.Join(vars, "}, ${") + "})",
			}}
		},
	}
	fmt.Println(custom.Record([]string{"clientid", "topic", "payload"}).SQL[0])
	// Output: INSERT INTO backendtest_record (clientid, topic, payload) VALUES (${clientid}, ${topic}, ${payload})
}
