package redisstore

// keys builds the store's key names: the spec's layout under Config.Prefix.
type keys struct{ prefix string }

func (k keys) client(clientID string) string { return k.prefix + "mqtt:client:" + clientID }
func (k keys) node(node string) string       { return k.prefix + "mqtt:node:" + node }
func (k keys) sub(clientID string) string    { return k.prefix + "mqtt:sub:" + clientID }

// msg is the hash of one stored message.
func (k keys) msg(msgID string) string { return k.prefix + "mqtt:msg:" + msgID }

// topic is the sorted set of the IDs of the messages stored on a topic (the spec gives it the
// same "mqtt:msg:" prefix as the message hashes).
func (k keys) topic(topic string) string { return k.prefix + "mqtt:msg:" + topic }

func (k keys) retain(topic string) string { return k.prefix + "mqtt:retain:" + topic }

func (k keys) acked(clientID, topic string) string {
	return k.prefix + "mqtt:acked:" + clientID + ":" + topic
}

// latest is the hash of the latest message of a topic (on_message_store_keep_latest); not in
// the spec, which does not say where keep_latest keeps it.
func (k keys) latest(topic string) string { return k.prefix + "mqtt:latest:" + topic }

// The topic indexes: sorted sets whose members, all of score 0, are topics, so that a wildcard
// lookup reads the range of its filter's literal prefix (ZRANGEBYLEX) instead of scanning the
// keyspace. Their names lie outside the spec's patterns: no topic or message ID can produce
// them.
func (k keys) msgIndex() string    { return k.prefix + "mqtt:index:msg" }
func (k keys) retainIndex() string { return k.prefix + "mqtt:index:retain" }
func (k keys) latestIndex() string { return k.prefix + "mqtt:index:latest" }
