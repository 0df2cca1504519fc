package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// processes are the children this program started; stopAll ends them (and only them).
type processes struct {
	mu   sync.Mutex
	list []*exec.Cmd
}

// start runs argv with its output in logPath; the child gets SIGKILL if this program dies.
func (p *processes) start(logPath string, argv ...string) (*exec.Cmd, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	p.mu.Lock()
	p.list = append(p.list, cmd)
	p.mu.Unlock()
	return cmd, nil
}

// stop asks one child to terminate (SIGTERM to its process group), then kills it after a while.
func (p *processes) stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(cmd.Process.Pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

func (p *processes) stopAll() {
	p.mu.Lock()
	list := p.list
	p.list = nil
	p.mu.Unlock()
	for _, cmd := range list {
		p.stop(cmd, 3*time.Second)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := statFields(b)
	return len(f) > 0 && f[0] != "Z"
}

// statFields returns the fields of /proc/PID/stat after the command name: fields[0] is the
// state (field 3 of proc(5)), fields[11] utime, fields[12] stime, fields[1] the parent PID.
func statFields(b []byte) []string {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

var clockTick = func() float64 {
	// sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on; getconf confirms when present.
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}()

// tree is pid and its descendants (nginx: master and worker).
func tree(pid int) []int {
	out := []int{pid}
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := statFields(b)
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], n)
	}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// cpuTime is user+system CPU time of pid and its descendants.
func cpuTime(pid int) time.Duration {
	var ticks int64
	for _, p := range tree(pid) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		f := statFields(b)
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + s
	}
	return time.Duration(float64(ticks) / clockTick * float64(time.Second))
}

// memory is the resident memory of pid and its descendants: RSS summed (shared pages counted
// once per process) and PSS summed (shared pages split between the processes sharing them).
type memory struct{ rss, pss int64 }

func memoryOf(pid int) memory {
	var m memory
	for _, p := range tree(pid) {
		m.rss += statusKB(p, "VmRSS:") << 10
		m.pss += rollupKB(p, "Pss:") << 10
	}
	return m
}

func statusKB(pid int, key string) int64 { return kbField(fmt.Sprintf("/proc/%d/status", pid), key) }
func rollupKB(pid int, key string) int64 {
	return kbField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), key)
}

func kbField(path, key string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, key) {
			fs := strings.Fields(l[len(key):])
			if len(fs) > 0 {
				n, _ := strconv.ParseInt(fs[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// freePort asks the kernel for an unused loopback port.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitTCP waits until something accepts connections on addr.
func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
