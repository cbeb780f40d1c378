//! The dashboard in a real terminal: tmux runs `cnntui models/mnist.ron --limit 2000` in an
//! 80×24 pane; the test starts training, waits for the batch gauge to move, pauses, selects a
//! layer and freezes it, quits through the confirm popup, and checks the screen at each step
//! and that the terminal is back in its normal mode. Needs tmux (`scripts/assets` installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Generous: the machine may be busy compiling or testing something else.
const TIMEOUT: Duration = Duration::from_secs(180);

/// A tmux server of its own (so no other session is touched) with one 80×24 session; killed
/// when dropped, also when an assertion fails.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).env("TERM", "xterm-256color");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self
            .command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tmux {args:?}: {e}"));
        assert!(
            out.status.success(),
            "tmux {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn start(shell_command: &str) -> Tmux {
        let installed = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            installed,
            "tmux is not installed; run scripts/assets, which installs it (the dashboard's \
             end-to-end test needs a real terminal)"
        );
        let id = format!(
            "cnntui-e2e-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let tmux = Tmux {
            socket: id.clone(),
            session: id,
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            &tmux.session,
            "-x",
            "80",
            "-y",
            "24",
            shell_command,
        ]);
        tmux
    }

    fn screen(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.session];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn alternate_screen(&self) -> bool {
        let out = self.run(&["display", "-p", "-t", &self.session, "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Polls the screen until `ok` holds; fails with the last screen after [`TIMEOUT`].
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "timed out waiting for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

/// The batches done, from the batch gauge's `n/32`.
fn batches_done(screen: &str) -> Option<usize> {
    let line = screen.lines().find(|l| l.contains("Batch"))?;
    let (left, _) = line.rsplit_once("/32")?;
    let digits: String = left
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// The Model pane's row of `layer`.
fn row<'a>(screen: &'a str, layer: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.contains(&format!("{layer} ")))
        .unwrap_or("")
}

#[test]
fn train_freeze_and_quit_in_a_real_terminal() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let save: PathBuf = std::env::temp_dir().join(format!("cnntui-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&save);
    let shell = format!(
        "cd '{}' && '{}' models/mnist.ron --limit 2000 --save '{}'; echo \"cnntui exited with $?\"; sleep 600",
        root.display(),
        env!("CARGO_BIN_EXE_cnntui"),
        save.display()
    );
    let tmux = Tmux::start(&shell);

    let screen = tmux.wait("the dashboard to be ready", |s| {
        s.contains("ready: press t")
    });
    assert!(screen.contains("Model · mnist_convnet"), "{screen}");
    assert!(
        screen.contains("93,322 params · 93,322 trainable"),
        "{screen}"
    );
    assert!(
        screen.contains("Feature maps · conv2d 26×26×32"),
        "{screen}"
    );
    assert!(
        tmux.alternate_screen(),
        "the dashboard uses the alternate screen"
    );

    tmux.keys(&["t"]);
    let screen = tmux.wait("the batch gauge to move", |s| {
        batches_done(s).is_some_and(|b| b > 0) || s.contains("Epoch 2/5")
    });
    assert!(screen.contains("Training · "), "{screen}");
    assert!(screen.contains("samples/s"), "{screen}");

    tmux.keys(&["t"]);
    tmux.wait("training to pause", |s| s.contains("Training · paused"));

    tmux.keys(&["Down", "Down"]);
    tmux.wait("conv2d_1's feature maps", |s| {
        s.contains("Feature maps · conv2d_1 11×11×64")
    });
    tmux.keys(&["Space"]);
    let screen = tmux.wait("conv2d_1 to be frozen", |s| s.contains("74,826 trainable"));
    assert!(row(&screen, "conv2d_1").contains('✗'), "{screen}");
    assert!(row(&screen, "conv2d_2").contains('✓'), "{screen}");

    tmux.keys(&["q"]);
    let screen = tmux.wait("the quit popup", |s| s.contains("Quit?"));
    assert!(screen.contains("y quit"), "{screen}");
    tmux.keys(&["y"]);
    let screen = tmux.wait("cnntui to exit", |s| s.contains("cnntui exited with"));
    assert!(screen.contains("cnntui exited with 0"), "{screen}");
    assert!(
        screen.contains(&format!(
            "Saved {}",
            save.join("checkpoint.safetensors").display()
        )),
        "quitting saves: {screen}"
    );
    assert!(
        !tmux.alternate_screen(),
        "the terminal is back in normal mode"
    );
    assert!(!screen.contains("Model · mnist_convnet"), "{screen}");
    let _ = std::fs::remove_dir_all(&save);
}
