package template_test

import (
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/topic"
)

func ExampleCompileStatement() {
	stmt, err := template.CompileStatement(template.PostgreSQL,
		"insert into mqtt_sub(clientid, topic, qos) values (${clientid}, ${topic}, ${qos})")
	if err != nil {
		panic(err)
	}
	v := template.Values{ClientID: "c1'); drop table mqtt_sub; --", Topic: "sensor/+/temp", QoS: 1}
	args := stmt.Args(nil, &v) // then db.Exec(ctx, stmt.Text(), args...)
	fmt.Println(stmt.Text())
	fmt.Printf("%#v\n", args)
	// Output:
	// insert into mqtt_sub(clientid, topic, qos) values ($1, $2, $3)
	// []interface {}{"c1'); drop table mqtt_sub; --", "sensor/+/temp", 1}
}

func ExampleCompileStatement_error() {
	_, err := template.CompileStatement(template.MySQL, "insert into t(a) values ('${clientid}')")
	fmt.Println(err)
	_, err = template.CompileStatement(template.MySQL, "insert into t(a) values (${clientId})")
	fmt.Println(err)
	// Output:
	// template: offset 26: ${clientid} inside a string literal opened at line 1, column 26: it would not be bound
	// template: offset 25: unknown variable ${clientId} (names are lower case: ${clientid})
}

func ExampleCompileRedis() {
	cmd, err := template.CompileRedis("HSET mqtt:sub:${clientid} ${topic} ${qos}")
	if err != nil {
		panic(err)
	}
	v := template.Values{ClientID: "c 1", Topic: "a topic\nwith a newline", QoS: 2}
	args := cmd.Args(nil, &v) // then rdb.Do(ctx, args...)
	fmt.Printf("%d arguments: %#v\n", len(args), args)
	// Output:
	// 4 arguments: []interface {}{"HSET", "mqtt:sub:c 1", "a topic\nwith a newline", 2}
}

func ExampleParseInflux() {
	set, err := template.ParseInflux([]byte(`{
	  "sensor/#": {
	    "measurement": "$topic",
	    "tags": {"host": ["$payload", "data", "$0", "host"], "clientid": "$clientid"},
	    "fields": {"temperature": ["$payload", "data", "$0", "temp"]},
	    "timestamp": "$timestamp"
	  }
	}`), template.InfluxOptions{})
	if err != nil {
		panic(err)
	}
	v := template.Values{
		ClientID: "c1",
		Topic:    "sensor/1",
		Payload:  []byte(`{"data": [{"temp": 21.5, "host": "a"}, {"temp": 22, "host": "b"}]}`),
		TS:       time.UnixMilli(1560743513626),
	}
	var points []template.Point
	for _, t := range set.Select(nil, v.Topic, topic.Match) {
		if points, err = t.Render(points, &v); err != nil {
			panic(err)
		}
	}
	var lines []byte
	for _, p := range points {
		lines, _ = p.AppendLine(lines, time.Millisecond)
	}
	fmt.Print(string(lines))
	// Output:
	// sensor/1,clientid=c1,host=a temperature=21.5 1560743513626
	// sensor/1,clientid=c1,host=b temperature=22 1560743513626
}

func ExampleParseTimescale() {
	set, err := template.ParseTimescale([]byte(`{
	  "sensor_data": {
	    "name": "insert_sensor_data",
	    "sql": "insert into sensor_data(time, location, temperature) values (NOW(), $1, $2)",
	    "param_keys": [["$payload", "data", "$0", "location"], ["$payload", "data", "$0", "temperature"]]
	  }
	}`))
	if err != nil {
		panic(err)
	}
	v := template.Values{Topic: "sensor_data", Payload: []byte(`{"data": [{"location": "bedroom", "temperature": 21.3}, {"location": "kitchen", "temperature": 29.5}]}`)}
	t := set.Entries()[0].Templates[0]
	rows, err := t.Render(nil, &v)
	if err != nil {
		panic(err)
	}
	for _, r := range rows {
		fmt.Println(r.SQL, r.Args)
	}
	// Output:
	// insert into sensor_data(time, location, temperature) values (NOW(), $1, $2) [bedroom 21.3]
	// insert into sensor_data(time, location, temperature) values (NOW(), $1, $2) [kitchen 29.5]
}
