package harness

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Faults: the reliability scenarios stop parts of the platform the way an outage does. A frozen
// process (SIGSTOP) keeps its sockets open and answers nothing, like a partitioned or hung server;
// Thaw (SIGCONT) lets it carry on where it was.

// ControlPlanePIDs returns the process ids of kube-apiserver and etcd of this cluster (found by the
// API server's port and etcd's client URL in their command lines) and of kube-controller-manager.
func (c *Cluster) ControlPlanePIDs() (map[string]int, error) {
	u, err := url.Parse(c.Config.Host)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	etcdURL := ""
	if c.env != nil && c.env.ControlPlane.Etcd != nil && c.env.ControlPlane.Etcd.URL != nil {
		etcdURL = c.env.ControlPlane.Etcd.URL.String()
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		cmd := filepath.Base(args[0])
		switch {
		case cmd == "kube-apiserver" && hasArg(args, "--secure-port="+u.Port()):
			out["kube-apiserver"] = pid
		case cmd == "etcd" && etcdURL != "" && hasArg(args, "--listen-client-urls="+etcdURL):
			out["etcd"] = pid
		}
	}
	c.mu.Lock()
	for _, p := range c.procs {
		if p.Name == "kube-controller-manager" && !isDone(p) {
			out["kube-controller-manager"] = p.Pid()
		}
	}
	c.mu.Unlock()
	if out["kube-apiserver"] == 0 || out["etcd"] == 0 {
		return out, fmt.Errorf("control plane processes not found (have %v)", out)
	}
	return out, nil
}

// Freeze stops processes with SIGSTOP (process groups of harness processes, plain pids otherwise).
func Freeze(pids ...int) error { return signalAll(syscall.SIGSTOP, pids) }

// Thaw resumes frozen processes with SIGCONT.
func Thaw(pids ...int) error { return signalAll(syscall.SIGCONT, pids) }

func signalAll(sig syscall.Signal, pids []int) error {
	var errs []string
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil {
			errs = append(errs, fmt.Sprintf("%d: %v", pid, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("signal %v: %s", sig, strings.Join(errs, "; "))
	}
	return nil
}

// hasArg reports whether args holds exactly arg (never a longer port or URL that starts like it).
func hasArg(args []string, arg string) bool {
	for _, a := range args {
		if a == arg {
			return true
		}
	}
	return false
}
