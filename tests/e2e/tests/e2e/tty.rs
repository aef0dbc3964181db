//! Terminals: `run -it`, `exec -it` and `attach`, driven through a real pty (util-linux
//! `script` allocates it), with berth and with the real docker CLI.
//!
//! Input is typed only once the terminal shows what it waits for — the shell's prompt, or a
//! marker the shell computes (`echo mark$((1+1))` shows `mark2`, which the echo of the typed
//! line does not contain) — never after a fixed sleep: typed before the CLI has put the
//! terminal in raw mode, ctrl-q is eaten by the pty's flow control and ctrl-c kills the CLI.
//! Every session has a deadline that fails the test and kills the client instead of hanging.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use berth_e2e::Daemon;

/// How long one terminal session may take, start to exit.
const SESSION: Duration = Duration::from_secs(60);

/// The busybox shell's prompt as root in `/`.
const PROMPT: &str = "/ # ";

/// ctrl-p ctrl-q, the default detach keys.
const DETACH: &[u8] = b"\x10\x11";

/// What the terminal has shown so far, and whether it has closed.
#[derive(Default)]
struct Screen {
    bytes: Vec<u8>,
    closed: bool,
}

/// A command running on a fresh 30×100 pty.
struct Pty {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    screen: Arc<(Mutex<Screen>, Condvar)>,
    /// How far `expect` has matched: later expectations look only after it.
    seen: usize,
    deadline: Instant,
    what: String,
}

impl Pty {
    /// Starts `cmd` (a shell command line, with `berth` on PATH) on a pty.
    fn spawn(d: &Daemon, cmd: &str) -> Pty {
        let line = format!("stty rows 30 cols 100; {cmd}");
        let mut child = Command::new("script")
            .args(["-q", "-e", "-c", &line, "/dev/null"])
            .env("BERTH_HOST", d.host())
            .env("DOCKER_HOST", d.host())
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    berth_e2e::bin_dir().display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("script(1) from util-linux");
        let screen = Arc::new((Mutex::new(Screen::default()), Condvar::new()));
        // Everything script(1) passes on, stdout then stderr, as it arrives.
        for mut out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let screen = screen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = out.read(&mut buf).unwrap_or(0);
                    let (lock, cv) = &*screen;
                    let mut s = lock.lock().unwrap();
                    if n == 0 {
                        s.closed = true;
                        cv.notify_all();
                        return;
                    }
                    s.bytes.extend_from_slice(&buf[..n]);
                    cv.notify_all();
                }
            });
        }
        Pty {
            stdin: child.stdin.take(),
            child: Some(child),
            screen,
            seen: 0,
            deadline: Instant::now() + SESSION,
            what: cmd.to_string(),
        }
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.screen.0.lock().unwrap().bytes).into_owned()
    }

    /// Kills the client and fails the test.
    #[track_caller]
    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        panic!("{}: {why}; the terminal showed:\n{:?}", self.what, self.shown());
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the terminal shows `text` after what earlier expectations matched.
    #[track_caller]
    fn expect(&mut self, text: &str) -> &mut Self {
        let found = {
            let (lock, cv) = &*self.screen;
            let mut s = lock.lock().unwrap();
            loop {
                let hay = &s.bytes[self.seen.min(s.bytes.len())..];
                if let Some(i) = hay.windows(text.len()).position(|w| w == text.as_bytes()) {
                    break Ok(self.seen + i + text.len());
                }
                let left = self.deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Err("deadline passed");
                }
                if s.closed {
                    break Err("the terminal closed");
                }
                s = cv.wait_timeout(s, left).unwrap().0;
            }
        };
        match found {
            Ok(end) => self.seen = end,
            Err(why) => self.fail(&format!("waiting for {text:?}: {why}")),
        }
        self
    }

    /// Types `bytes`.
    #[track_caller]
    fn send(&mut self, bytes: &[u8]) -> &mut Self {
        let stdin = self.stdin.as_mut().unwrap();
        if let Err(e) = stdin.write_all(bytes).and_then(|_| stdin.flush()) {
            self.fail(&format!("typing {bytes:?}: {e}"));
        }
        self
    }

    /// Waits (bounded) for the client to exit; its exit code and everything the terminal showed.
    #[track_caller]
    fn exit(mut self) -> (i32, String) {
        // stdin stays open: at its end script(1) would type an EOF into the session.
        let pid = self.child.as_ref().unwrap().id() as i32;
        let left = self.deadline.saturating_duration_since(Instant::now());
        if !berth_e2e::wait_pid_exit(pid, left) {
            self.fail("did not exit by the deadline");
        }
        let code = self.child.take().unwrap().wait().unwrap().code().unwrap_or(-1);
        // The output readers end with the pty.
        let (lock, cv) = &*self.screen;
        let mut s = lock.lock().unwrap();
        while !s.closed {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            s = cv.wait_timeout(s, left).unwrap().0;
        }
        (code, String::from_utf8_lossy(&s.bytes).into_owned())
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` on a pty with no input; its exit code and what the terminal showed.
fn on_pty(d: &Daemon, cmd: &str) -> (i32, String) {
    Pty::spawn(d, cmd).exit()
}

/// Attaches `cmd` (`berth attach NAME` or the docker CLI's) to the tty container `name` and
/// returns once the client shows the container's output — so it is in raw mode: both CLIs
/// switch the terminal before they copy output. A shell waiting at its prompt prints nothing
/// new on attach, so once the daemon has the attach (its event), a marker is written to the
/// container's terminal from an exec.
fn attach(d: &Daemon, cmd: &str, name: &str) -> Pty {
    let since = berth_e2e::timestamp();
    let mut pty = Pty::spawn(d, cmd);
    d.wait_for_event(&since, &[&format!("container={name}"), "event=attach"], SESSION);
    d.berth(&["exec", name, "sh", "-c", "echo attach-$((6*7)) > /proc/1/fd/1"])
        .ok();
    pty.expect("attach-42");
    pty
}

#[test]
fn run_it_gives_a_real_terminal() {
    let d = daemon!();
    let (code, out) = on_pty(&d, "berth run -it --rm busybox sh -c 'tty; stty size'");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("30 100"), "window size not passed: {out}");
}

#[test]
fn interactive_shell_echoes_and_exits_with_its_code() {
    let d = daemon!();
    let mut pty = Pty::spawn(&d, "berth run -it --rm busybox sh");
    pty.expect(PROMPT)
        .send(b"echo hello-from-pty$((1+1))\n")
        .expect("hello-from-pty2")
        .expect(PROMPT)
        .send(b"exit 3\n");
    let (code, out) = pty.exit();
    assert_eq!(code, 3, "{out}");
}

#[test]
fn ctrl_c_interrupts_the_foreground_job() {
    let d = daemon!();
    let mut pty = Pty::spawn(&d, "berth run -it --rm busybox sh");
    // The job says when it runs (in the foreground, as the shell hands the terminal over before
    // it runs a job); without the interrupt it would outlast the session's deadline.
    pty.expect(PROMPT)
        .send(b"sh -c 'echo job$((1+1)); exec sleep 600'\n")
        .expect("job2")
        .send(b"\x03")
        .expect(PROMPT)
        .send(b"echo after-interrupt$((1+1))\n")
        .expect("after-interrupt2")
        .expect(PROMPT)
        .send(b"exit\n");
    let (code, out) = pty.exit();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn detach_keys_leave_a_tty_container_running() {
    let d = daemon!();
    let mut pty = Pty::spawn(&d, "berth run -it --name dt busybox sh");
    pty.expect(PROMPT)
        .send(b"echo before-detach$((1+1))\n")
        .expect("before-detach2")
        .expect(PROMPT)
        .send(DETACH);
    pty.exit();
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}}", "dt"]).ok().out(),
        "running"
    );
    // And attach gets the shell back.
    let mut pty = attach(&d, "berth attach dt", "dt");
    pty.send(b"echo reattached$((1+1))\n")
        .expect("reattached2")
        .expect(PROMPT)
        .send(DETACH);
    pty.exit();
    assert_eq!(
        d.berth(&["inspect", "-f", "{{.State.Status}}", "dt"]).ok().out(),
        "running"
    );
    // attach passes the container's exit code through.
    let mut pty = attach(&d, "berth attach dt", "dt");
    pty.send(b"exit 6\n");
    let (code, out) = pty.exit();
    assert_eq!(code, 6, "{out}");
}

#[test]
fn exec_it_runs_a_shell_in_the_container() {
    let d = daemon!();
    d.berth(&[
        "run", "-d", "--name", "xt", "-h", "xthost", "busybox", "sleep", "60",
    ])
    .ok();
    let mut pty = Pty::spawn(&d, "berth exec -it xt sh");
    pty.expect(PROMPT)
        .send(b"echo $(hostname)-$(tty)\n")
        .expect("xthost-/dev/pts/")
        .expect(PROMPT)
        .send(b"exit 2\n");
    let (code, out) = pty.exit();
    assert_eq!(code, 2, "{out}");
}

#[test]
fn docker_cli_it_attach_and_exec_it() {
    let d = daemon!();
    let docker = berth_e2e::docker_cli().display();
    // The window size arrives with the create (ConsoleSize) from docker CLI 23 on, but only as
    // a resize after the start from the 20.10 client Debian's docker.io ships: the container
    // waits for it (within the session's deadline) rather than read it at once.
    let (code, out) = on_pty(
        &d,
        &format!(
            "{docker} run -it --rm busybox sh -c 'tty; \
             until [ \"$(stty size 2>/dev/null)\" = \"30 100\" ]; do sleep 0.05; done; \
             echo size-$((30*100)); exit 4'"
        ),
    );
    assert!(out.contains("/dev/pts/0") && out.contains("size-3000"), "{out}");
    assert_eq!(code, 4, "{out}");
    d.docker(&["run", "-d", "-it", "--name", "dk2", "busybox", "sh"])
        .ok();
    let mut pty = attach(&d, &format!("{docker} attach dk2"), "dk2");
    pty.send(b"echo via-docker-attach$((1+1))\n")
        .expect("via-docker-attach2")
        .expect(PROMPT)
        .send(DETACH);
    pty.exit();
    assert_eq!(
        d.docker(&["inspect", "-f", "{{.State.Running}}", "dk2"])
            .ok()
            .out(),
        "true"
    );
    let mut pty = Pty::spawn(&d, &format!("{docker} exec -it dk2 sh"));
    pty.expect(PROMPT)
        .send(b"echo in-exec$((1+1))\n")
        .expect("in-exec2")
        .expect(PROMPT)
        .send(b"exit 5\n");
    let (code, out) = pty.exit();
    assert_eq!(code, 5, "{out}");
}
