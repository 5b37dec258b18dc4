// promql-selectors parses PromQL expressions with Prometheus's own parser and prints, for each,
// the metric names its selectors read: the chart's tests use it to check that every rule and
// dashboard expression parses and names only metrics the components export.
//
// Input (stdin): a JSON array of expressions. Output (stdout): a JSON array, one object per
// expression, in order: {"expr": ..., "error": "..." (empty when it parses), "metrics": [...]}.
// A selector without a fixed metric name (`{__name__=~"..."}`) is reported as "".
package main

import (
	"encoding/json"
	"os"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

type result struct {
	Expr    string   `json:"expr"`
	Error   string   `json:"error"`
	Metrics []string `json:"metrics"`
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

func main() {
	var exprs []string
	if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
		os.Stderr.WriteString("stdin is not a JSON array of strings: " + err.Error() + "\n")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	results := make([]result, 0, len(exprs))
	for _, expr := range exprs {
		r := result{Expr: expr, Metrics: []string{}}
		ast, err := p.ParseExpr(expr)
		if err != nil {
			r.Error = err.Error()
		} else {
			seen := map[string]bool{}
			parser.Inspect(ast, func(node parser.Node, _ []parser.Node) error {
				if vs, ok := node.(*parser.VectorSelector); ok {
					seen[selectorName(vs)] = true
				}
				return nil
			})
			for name := range seen {
				r.Metrics = append(r.Metrics, name)
			}
			sort.Strings(r.Metrics)
		}
		results = append(results, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		os.Exit(1)
	}
}
