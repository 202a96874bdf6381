// Package mongostore is the MongoDB backend of mqttstore (go.mongodb.org/mongo-driver/v2).
package mongostore
