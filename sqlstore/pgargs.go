package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// errNotNumber: a string argument of a custom statement is bound to a numeric parameter and
// is not a number.
var errNotNumber = errors.New("not a number")

// pgFitArgs makes the arguments of st, a custom statement, acceptable to the parameter types
// PostgreSQL infers for it, as epgsql (EMQX) does: pgx encodes by parameter type and refuses
// an int64 for a text parameter, say, where epgsql sends it. The statement is prepared once
// per connection (pgx keeps it by its text, and the batch then runs it as prepared).
// st.args are replaced in place.
func pgFitArgs(ctx context.Context, c *pgx.Conn, st stmt) error {
	sd, err := c.Prepare(ctx, st.sql, st.sql)
	if err != nil {
		return fmt.Errorf("prepare %q: %w", firstLine(st.sql), err)
	}
	if len(sd.ParamOIDs) != len(st.args) {
		return nil // pgx reports the mismatch
	}
	for i, oid := range sd.ParamOIDs {
		a, err := pgArg(oid, st.args[i])
		if err != nil {
			return fmt.Errorf("%q: argument $%d: %w", firstLine(st.sql), i+1, err)
		}
		st.args[i] = a
	}
	return nil
}

// pgArg converts v, an argument of template.Statement.Args (string, int64 or []byte), to
// what a parameter of type oid accepts; other pairs pgx encodes as they are. Nothing is
// altered: a payload that is not text, or a string that is not a number, is an error.
func pgArg(oid uint32, v any) (any, error) {
	switch v := v.(type) {
	case int64: // qos, ts
		switch oid {
		case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
			return strconv.FormatInt(v, 10), nil
		case pgtype.TimestampOID: // ts, milliseconds since the epoch, as UTC like other times
			return time.UnixMilli(v).UTC(), nil
		case pgtype.TimestamptzOID:
			return time.UnixMilli(v), nil
		}
	case string:
		switch oid {
		case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %q for an integer parameter", errNotNumber, v)
			}
			return n, nil
		case pgtype.Float4OID, pgtype.Float8OID:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %q for a float parameter", errNotNumber, v)
			}
			return f, nil
		case pgtype.NumericOID:
			var n pgtype.Numeric
			if err := n.Scan(v); err != nil {
				return nil, fmt.Errorf("%w: %q for a numeric parameter", errNotNumber, v)
			}
			return n, nil
		case pgtype.ByteaOID:
			return []byte(v), nil
		}
	case []byte: // payload
		switch oid {
		case pgtype.TextOID, pgtype.VarcharOID, pgtype.BPCharOID, pgtype.NameOID:
			if err := textPayload(v); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}
