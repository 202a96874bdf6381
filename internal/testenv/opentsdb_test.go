package testenv

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestOpenTSDBPutAndExport(t *testing.T) {
	t.Parallel()
	c := OpenTSDB(t)
	metric := c.MetricPrefix + "temperature"
	body := `[{"metric":"` + metric + `","timestamp":1700000000123,"value":21.5,"tags":{"clientid":"c1","topic":"a/b"}}]`
	resp, err := http.Post(c.PutURL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("put: %s", resp.Status)
	}
	want := []OpenTSDBSeries{{Metric: metric, Tags: map[string]string{"clientid": "c1", "topic": "a/b"},
		Values: []float64{21.5}, Timestamps: []int64{1700000000123}}}
	var got []OpenTSDBSeries
	// Export flushes the ingestion buffer; a fresh series may still take a moment to be indexed.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = c.Export(t.Context(), metric); err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			break
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Export(%s) = %+v, want %+v", metric, got, want)
	}
}
