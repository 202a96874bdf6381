module github.com/mqttstore/mqttstore

go 1.26
