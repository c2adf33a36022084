package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func mustURL(s string) url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return *u
}

// startEtcd runs a single-member etcd inside this process, data in dir, loopback only.
func startEtcd(dir string) (*embed.Etcd, string, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "e2e"
	cfg.Dir = filepath.Join(dir, "etcd")
	client := mustURL("http://127.0.0.1:" + strconv.Itoa(clientPort))
	peer := mustURL("http://127.0.0.1:" + strconv.Itoa(peerPort))
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.ListenMetricsUrls = nil
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	// Throwaway data: durability buys nothing and fsync costs seconds on loaded CI disks.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", errors.New("etcd did not become ready in 60s")
	}
	return e, client.String(), nil
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// spawn runs this binary's subcommand `name` as a child process with its output in dir.
func spawn(dir, name string, args []string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, append([]string{name}, args...)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Children die with us, however we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() {
		c.done <- cmd.Wait()
		logFile.Close()
	}()
	return c, nil
}

func (c *child) stop() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func writeKubeconfig(path, server string, caPEM []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "e2e"
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(*cfg, tmp); err != nil {
		return err
	}
	// Appears complete or not at all: run.sh waits for this file.
	return os.Rename(tmp, path)
}

// waitFor polls GET server+path with the admin token until it answers 200.
func waitFor(ctx context.Context, client *http.Client, server, path, token string, children ...*child) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		for _, c := range children {
			select {
			case err := <-c.done:
				c.done <- err
				return fmt.Errorf("%s exited (%v) before %s answered; see its log", c.name, err, path)
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func serve(args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	dir := fs.String("dir", "", "state directory (etcd data, keys, logs, kubeconfig); default: a fresh temporary directory, removed on exit")
	compaction := fs.Duration("etcd-compaction-interval", 0, "kube-apiserver's etcd compaction interval (0: its default)")
	timeout := fs.Duration("timeout", 180*time.Second, "give up if not ready by then")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	started := time.Now()
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "control-plane-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "serve: %v\n", err)
			return 1
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	} else if err := os.MkdirAll(*dir, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		return 1
	}
	if err := run(*dir, *compaction, *timeout, started); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v (logs in %s)\n", err, *dir)
		return 1
	}
	return 0
}

func run(dir string, compaction, timeout time.Duration, started time.Time) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	p, err := newPKI(dir)
	if err != nil {
		return fmt.Errorf("generating keys: %w", err)
	}
	adminToken, err := randomToken()
	if err != nil {
		return err
	}
	cmToken, err := randomToken()
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(dir, "tokens.csv")
	tokens := fmt.Sprintf("%s,admin,admin,system:masters\n%s,system:kube-controller-manager,kcm,system:masters\n", adminToken, cmToken)
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return err
	}

	etcd, etcdURL, err := startEtcd(dir)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	defer etcd.Close()

	port, err := freePort()
	if err != nil {
		return err
	}
	server := "https://127.0.0.1:" + strconv.Itoa(port)
	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The `kubernetes` Service's endpoints would have to be a non-loopback address.
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--tls-cert-file=" + p.ServingCert,
		"--tls-private-key-file=" + p.ServingKey,
		"--client-ca-file=" + p.CACert,
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--anonymous-auth=false",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAPub,
		"--service-account-signing-key-file=" + p.SAKey,
		"--api-audiences=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--profiling=false",
		"--v=1",
	}
	if compaction > 0 {
		apiArgs = append(apiArgs, "--etcd-compaction-interval="+compaction.String())
	}
	apiserver, err := spawn(dir, "kube-apiserver", apiArgs)
	if err != nil {
		return err
	}
	defer apiserver.stop()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	readyCtx, readyCancel := context.WithTimeout(ctx, timeout)
	defer readyCancel()
	if err := waitFor(readyCtx, client, server, "/readyz", adminToken, apiserver); err != nil {
		return err
	}
	apiReady := time.Since(started)

	cmKubeconfig := filepath.Join(dir, "controller-manager.kubeconfig")
	if err := writeKubeconfig(cmKubeconfig, server, p.caPEM, cmToken); err != nil {
		return err
	}
	cm, err := spawn(dir, "kube-controller-manager", []string{
		"--kubeconfig=" + cmKubeconfig,
		"--authentication-kubeconfig=" + cmKubeconfig,
		"--authorization-kubeconfig=" + cmKubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=0",
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		// Only what makes namespaces, ownerReferences and ServiceAccounts behave as in a
		// cluster; no nodes, no workloads.
		"--controllers=namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller",
		"--service-account-private-key-file=" + p.SAKey,
		"--root-ca-file=" + p.CACert,
		"--v=1",
	})
	if err != nil {
		return err
	}
	defer cm.stop()
	// The serviceaccount controller creating `default` proves the controller manager runs.
	if err := waitFor(readyCtx, client, server, "/api/v1/namespaces/default/serviceaccounts/default", adminToken, apiserver, cm); err != nil {
		return err
	}

	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, p.caPEM, adminToken); err != nil {
		return err
	}
	fmt.Printf("control plane ready: kube-apiserver /readyz after %.1fs, controllers after %.1fs\n",
		apiReady.Seconds(), time.Since(started).Seconds())
	fmt.Printf("  server      %s\n", server)
	fmt.Printf("  kubeconfig  %s\n", kubeconfig)
	fmt.Printf("  export KUBECONFIG=%s\n", kubeconfig)

	select {
	case <-ctx.Done():
		return nil
	case err := <-apiserver.done:
		apiserver.done <- err
		return fmt.Errorf("kube-apiserver exited: %v", err)
	case err := <-cm.done:
		cm.done <- err
		return fmt.Errorf("kube-controller-manager exited: %v", err)
	}
}
