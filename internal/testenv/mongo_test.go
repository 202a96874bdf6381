package testenv

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func mongoClient(t *testing.T, cfg MongoConfig) *mongo.Client {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(cfg.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	return client
}

func TestMongoWritesReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := Mongo(t)
	coll := mongoClient(t, cfg).Database(cfg.Database).Collection("kv")
	want := []byte("hello \x00 mongo")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a/b"}, {Key: "v", Value: want}}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		V []byte `bson:"v"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "a/b"}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if string(doc.V) != string(want) {
		t.Errorf("read back %q, wrote %q", doc.V, want)
	}
}

func TestMongoDatabaseIsFreshAndDropped(t *testing.T) {
	t.Parallel()
	// A server that stops answering fails the test rather than hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var inner MongoConfig
	t.Run("inner", func(t *testing.T) {
		inner = Mongo(t)
		coll := mongoClient(t, inner).Database(inner.Database).Collection("kv")
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "v", Value: 1}}); err != nil {
			t.Fatal(err)
		}
	})
	outer := Mongo(t)
	if inner.Database == outer.Database {
		t.Fatalf("two tests got database %s", outer.Database)
	}
	names, err := mongoClient(t, outer).ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, inner.Database) {
		t.Errorf("database %s outlived its test: %v", inner.Database, names)
	}
}
