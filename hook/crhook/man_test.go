package main

import (
	"bufio"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/crhook/crhook/config"
	"github.com/crhook/crhook/engine"
)

// The man pages are docs/NAME.N.md, rendered by `make man` (rpm/rpm.mk).
const docsDir = "../../docs"

// manPage maps a command to the page that documents it: the root to
// crhook(1), a top-level command and all its subcommands to crhook-NAME(1).
func manPage(cmd *cobra.Command) string {
	path := strings.Fields(cmd.CommandPath())
	if len(path) == 1 {
		return "crhook.1.md"
	}
	return "crhook-" + path[1] + ".1.md"
}

// builtin reports cobra's own commands, documented by their --help.
func builtin(cmd *cobra.Command) bool {
	return cmd.Name() == "help" || cmd.Name() == "completion" ||
		(cmd.Parent() != nil && builtin(cmd.Parent()))
}

func readPage(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(docsDir, name))
	if err != nil {
		t.Fatalf("man page: %v", err)
	}
	return string(data)
}

// TestManPagesCoverCommands runs the command tree in-process: every command
// and flag in the binary's help appears in its man page.
func TestManPagesCoverCommands(t *testing.T) {
	root := newRootCmd()
	root.InitDefaultHelpFlag()
	root.InitDefaultVersionFlag()
	rootPage := readPage(t, "crhook.1.md")

	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.Hidden || builtin(cmd) {
			return
		}
		name := manPage(cmd)
		page := readPage(t, name)
		if cmd != root {
			if !strings.Contains(page, cmd.CommandPath()) {
				t.Errorf("%s: does not name the command %q", name, cmd.CommandPath())
			}
			if cmd.Parent() == root {
				ref := "**" + strings.TrimSuffix(name, ".1.md") + "**(1)"
				if !strings.Contains(rootPage, cmd.CommandPath()) || !strings.Contains(rootPage, ref) {
					t.Errorf("crhook.1.md: does not list %q and refer to %s", cmd.CommandPath(), ref)
				}
			}
		}
		flags := cmd.LocalNonPersistentFlags()
		if cmd == root {
			flags = cmd.Flags()
		} else {
			cmd.PersistentFlags().VisitAll(func(f *pflag.Flag) { flags.AddFlag(f) })
		}
		flags.VisitAll(func(f *pflag.Flag) {
			if f.Hidden || (f.Name == "help" && cmd != root) {
				return
			}
			if !strings.Contains(page, "--"+f.Name) {
				t.Errorf("%s: %q has flag --%s, the page does not mention it", name, cmd.CommandPath(), f.Name)
			}
			if f.Shorthand != "" && !strings.Contains(page, "-"+f.Shorthand+"**") {
				t.Errorf("%s: %q has flag -%s, the page does not mention it", name, cmd.CommandPath(), f.Shorthand)
			}
		})
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)

	// Pages written ahead of their command (crhook explain and crhook doctor
	// land separately): say so, so the gap is visible in -v output.
	for _, name := range manPages(t) {
		cmdName := strings.TrimPrefix(strings.TrimSuffix(name, ".1.md"), "crhook-")
		if !strings.HasSuffix(name, ".1.md") || name == "crhook.1.md" {
			continue
		}
		if c, _, err := root.Find([]string{cmdName}); err != nil || c == root {
			t.Logf("%s: crhook %s is not in the binary yet; only its paths are checked", name, cmdName)
		}
	}
}

func manPages(t *testing.T) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(docsDir, "*.[1-8].md"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no man pages in %s (%v)", docsDir, err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

// notReadHere are paths the pages may name although nothing in this module
// reads or installs them, each with the reason.
var notReadHere = map[string]string{
	"/etc/containers/containers.conf.d/99-crhook-default.conf": "example drop-in the admin creates to make crhook the default runtime (podman reads it)",
	"/proc/config.gz":      "kernel config read by crhook doctor (issue 5)",
	"/boot/config-RELEASE": "kernel config read by crhook doctor (issue 5)",
	"/var/lib/containers/storage/overlay-containers/ID/userdata/dump.log": "example: where podman keeps CRIU's dump log",
	"/tmp/img":          "example: a plain criu dump directory",
	"/tmp/img/dump.log": "example: a plain criu dump log",
	// engine.DetectEngine matches these in the arguments it is given; it
	// reads no file there.
	"/run/containerd/": "prefix of containerd's --root, an engine signal (engine.DetectEngine)",
	"/run/containerd/io.containerd.runtime.v2.task/": "containerd's bundle directory in --log, an engine signal (engine.DetectEngine)",
	"/usr/bin/podman": "podman's --exit-command for conmon, an engine signal (engine.DetectEngine)",
}

// codePaths returns what the code reads and the package installs, and the
// paths every page must agree on.
type codePaths struct {
	known      map[string]string // path -> where it comes from
	userCRIU   string            // ~/.criu/default.conf as pages write it
	settings   []string          // settings sources in load order
	runtimeBin string
	dropIn     string
	confFile   string
}

func loadCodePaths(t *testing.T) codePaths {
	t.Helper()
	c := codePaths{known: map[string]string{}}
	add := func(from string, paths ...string) {
		for _, p := range paths {
			if p != "" {
				c.known[p] = from
			}
		}
	}
	p := config.DefaultPaths()
	p.SettingsEnv = ""
	add("config.DefaultPaths", p.CRIUDir, p.SystemCRIU(), p.SettingsDefault, p.SettingsSystem, p.SettingsDropIn)
	add("config.Paths.RuntimeCRIU", p.RuntimeCRIU("runc")...)
	add("config.Paths.RuntimeCRIU", p.RuntimeCRIU("crun")...)

	// The user layer, written ~/... in the pages: derive it from the code's
	// path and this user's home.
	if u, err := user.Current(); err == nil && p.UserCRIU != "" {
		if rel, err := filepath.Rel(u.HomeDir, p.UserCRIU); err == nil && !strings.HasPrefix(rel, "..") {
			c.userCRIU = "~/" + rel
			add("config.DefaultPaths UserCRIU", c.userCRIU)
		}
	}
	if c.userCRIU == "" {
		t.Logf("no home directory for this user: ~/.criu/default.conf not derived from the code")
		c.userCRIU = "~/.criu/default.conf"
		add("assumed", c.userCRIU)
	}

	// Settings order as SettingsFiles returns it: the two fixed files, then
	// the drop-in directory's *.toml, then $CRHOOK_CONFIG.
	dropInDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dropInDir, "x.toml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := config.Paths{SettingsDefault: p.SettingsDefault, SettingsSystem: p.SettingsSystem,
		SettingsDropIn: dropInDir, SettingsEnv: "ENV"}.SettingsFiles()
	if err != nil || len(files) != 4 || files[3] != "ENV" || filepath.Dir(files[2]) != dropInDir {
		t.Fatalf("SettingsFiles: %q, %v: the order this test knows has changed", files, err)
	}
	dropInGlob := filepath.Join(p.SettingsDropIn, "*.toml")
	c.settings = []string{files[0], files[1], dropInGlob, "$" + config.EnvConfig}
	add("config.Paths.SettingsFiles", dropInGlob)

	state := config.Fallback().StateDir
	conf, err := engine.ConfPath(state, "ID")
	if err != nil {
		t.Fatal(err)
	}
	c.confFile = conf
	add("engine.SettingsCachePath", engine.SettingsCachePath(p))
	add("config.Fallback StateDir", state, filepath.Dir(filepath.Dir(conf)))
	add("engine.ConfPath", conf, filepath.Dir(conf))

	// Installed by the package: rpm/crhook.files (tests/rpm/check.sh holds
	// the built RPM to that list).
	f, err := os.Open("../../rpm/crhook.files")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	installed := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && !strings.HasPrefix(fields[0], "#") {
			add("rpm/crhook.files", fields[4])
			installed[fields[4]] = true
		}
	}

	// The drop-in podman reads, and the runtime paths it registers.
	c.dropIn = "/etc/containers/containers.conf.d/50-crhook.conf"
	c.runtimeBin = "/usr/libexec/crhook/crhook-runtime"
	var reg struct {
		Engine struct {
			Runtimes map[string][]string `toml:"runtimes"`
		} `toml:"engine"`
	}
	if _, err := toml.DecodeFile("../../contrib/containers.conf.d/50-crhook.conf", &reg); err != nil {
		t.Fatal(err)
	}
	add("contrib/containers.conf.d/50-crhook.conf", reg.Engine.Runtimes["crhook"]...)
	for _, must := range []string{c.dropIn, c.runtimeBin} {
		if !installed[must] {
			t.Errorf("%s is not in rpm/crhook.files", must)
		}
	}
	if len(reg.Engine.Runtimes["crhook"]) == 0 || reg.Engine.Runtimes["crhook"][0] != c.runtimeBin {
		t.Errorf("50-crhook.conf registers %q first, want %s", reg.Engine.Runtimes["crhook"], c.runtimeBin)
	}
	return c
}

// matchesGlob reports a path that one of the known globs (the drop-in
// directory's *.toml) matches, such as an example drop-in.
func (c codePaths) matchesGlob(p string) bool {
	for k := range c.known {
		if strings.Contains(k, "*") {
			if ok, _ := filepath.Match(k, p); ok {
				return true
			}
		}
	}
	return false
}

var (
	mdEmphasis = regexp.MustCompile(`\*+`)
	pathToken  = regexp.MustCompile(`(?:^|[\s(\[="'\x60])((?:~|\$[A-Z_]+)?/[A-Za-z0-9._/\-\x00]+)`)
)

// pagePaths returns the absolute (or ~/) paths a markdown page names, with
// emphasis removed and escaped \* kept as a glob star.
func pagePaths(md string) []string {
	md = strings.ReplaceAll(md, `\*`, "\x00")
	md = mdEmphasis.ReplaceAllString(md, "")
	seen := map[string]bool{}
	var out []string
	for _, m := range pathToken.FindAllStringSubmatch(md, -1) {
		p := strings.TrimRight(strings.ReplaceAll(m[1], "\x00", "*"), ".,;:")
		if p == "/" || strings.HasPrefix(p, "$") || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TestManPagePaths: the paths each page names are the paths the code reads
// (or the package installs), and the pages state the load order the code has.
func TestManPagePaths(t *testing.T) {
	c := loadCodePaths(t)
	for _, name := range manPages(t) {
		page := readPage(t, name)
		for _, p := range pagePaths(page) {
			if _, ok := c.known[p]; ok || c.matchesGlob(p) {
				continue
			}
			if _, ok := notReadHere[p]; ok {
				continue
			}
			t.Errorf("%s names %s, which the code does not read and the package does not install", name, p)
		}
	}

	// Every page that lists the CRIU layers or the settings names all of
	// them, in precedence order.
	criuLayers := []string{"/etc/criu/default.conf", c.userCRIU, "/etc/criu/runc.conf", "/etc/criu/crun.conf"}
	p := config.DefaultPaths()
	if got := []string{p.SystemCRIU(), "", p.RuntimeCRIU("runc")[0], p.RuntimeCRIU("crun")[0]}; got[0] != criuLayers[0] ||
		got[2] != criuLayers[2] || got[3] != criuLayers[3] {
		t.Fatalf("CRIU layer paths in the code changed: %q", got)
	}
	inOrder := func(name, what string, want []string) {
		page := strings.ReplaceAll(mdEmphasis.ReplaceAllString(strings.ReplaceAll(readPage(t, name), `\*`, "\x00"), ""), "\x00", "*")
		last := -1
		for _, w := range want {
			i := strings.Index(page, w)
			if i < 0 {
				t.Errorf("%s: %s: does not name %s", name, what, w)
				continue
			}
			if i < last {
				t.Errorf("%s: %s: %s is named before a file of lower precedence; want the order %q", name, what, w, want)
			}
			last = i
		}
	}
	for _, name := range []string{"crhook-config.1.md", "crhook-runtime.8.md"} {
		inOrder(name, "CRIU layers", criuLayers)
	}
	for _, name := range []string{"crhook.toml.5.md"} {
		inOrder(name, "settings files", c.settings)
	}
	for _, name := range []string{"crhook.1.md", "crhook-config.1.md", "crhook-runtime.8.md", "crhook-doctor.1.md"} {
		inOrder(name, "settings files", c.settings[:3])
	}
	for _, w := range []string{c.runtimeBin, c.dropIn, c.confFile, config.Fallback().StateDir} {
		if !strings.Contains(readPage(t, "crhook-runtime.8.md"), w) {
			t.Errorf("crhook-runtime.8.md: does not name %s", w)
		}
	}
}

// TestReadmeNamesDoctorFlags: README's crhook doctor line showed only
// --format while --only and --destination had landed; it must name every
// flag of the command it summarises.
func TestReadmeNamesDoctorFlags(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doctor, _, err := newRootCmd().Find([]string{"doctor"})
	if err != nil || doctor.Name() != "doctor" {
		t.Fatalf("no doctor command: %v", err)
	}
	doctor.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden && f.Name != "help" && !strings.Contains(string(data), "--"+f.Name) {
			t.Errorf("README.md does not name crhook doctor --%s", f.Name)
		}
	})
}
