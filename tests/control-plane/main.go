// Command control-plane is one multi-call binary (one link, one cache entry) for the
// end-to-end suite's real Kubernetes control plane:
//
//	control-plane serve [flags]        etcd + kube-apiserver + kube-controller-manager on loopback
//	control-plane kubectl ...          kubectl (with kustomize) of the same release
//	control-plane kstatus < obj.json   kstatus' verdict on Kubernetes objects, as JSON
//
// kube-apiserver and kube-controller-manager are also subcommands: `serve` runs them as
// child processes of this same binary, so each keeps its own global flag and metric state.
package main

import (
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

const usage = "usage: control-plane serve|kubectl|kstatus|kube-apiserver|kube-controller-manager [args]"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	sub := os.Args[1]
	// Each subcommand sees itself as argv[0], as if it were its own binary.
	os.Args = append([]string{sub}, os.Args[2:]...)
	switch sub {
	case "serve":
		os.Exit(serve(os.Args[1:]))
	case "kubectl":
		runKubectl()
	case "kstatus":
		os.Exit(kstatus(os.Stdin, os.Stdout, os.Stderr))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
}
