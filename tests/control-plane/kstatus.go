package main

import (
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// kstatus reads one object or a List (e.g. `kubectl get -o json`) on stdin and prints, as
// a JSON array, the status kstatus computes for each: what Flux and kstatus-based waiters
// would conclude about it.
func kstatus(in io.Reader, out, errOut io.Writer) int {
	data, err := io.ReadAll(in)
	if err != nil {
		fmt.Fprintf(errOut, "kstatus: reading stdin: %v\n", err)
		return 1
	}
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(data); err != nil {
		fmt.Fprintf(errOut, "kstatus: decoding object: %v\n", err)
		return 1
	}
	var items []unstructured.Unstructured
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			fmt.Fprintf(errOut, "kstatus: decoding list: %v\n", err)
			return 1
		}
		items = list.Items
	} else {
		items = []unstructured.Unstructured{obj}
	}
	verdicts := make([]verdict, 0, len(items))
	for i := range items {
		res, err := status.Compute(&items[i])
		if err != nil {
			fmt.Fprintf(errOut, "kstatus: %s/%s: %v\n", items[i].GetKind(), items[i].GetName(), err)
			return 1
		}
		verdicts = append(verdicts, verdict{
			Kind:    items[i].GetKind(),
			Name:    items[i].GetName(),
			Status:  res.Status.String(),
			Message: res.Message,
		})
	}
	if err := json.NewEncoder(out).Encode(verdicts); err != nil {
		fmt.Fprintf(errOut, "kstatus: %v\n", err)
		return 1
	}
	return 0
}
