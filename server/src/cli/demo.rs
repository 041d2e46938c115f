//! `theta demo`: the interim demo. Generates a synthetic clinical EEG with the fixtures
//! generator into a data folder and prints what `theta inspect` reads of it. Later issues grow
//! it into the running service.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use theta_fixtures::{SynthAnnotation, SynthSpec, write_synth_file};

/// Arguments of `theta demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the generated recording.
    #[arg(long, default_value = "theta-data/demo")]
    pub dir: PathBuf,
    /// Minutes of EEG to generate.
    #[arg(long, default_value_t = 20.0)]
    pub minutes: f64,
    /// Print the inspection as JSON.
    #[arg(long)]
    pub json: bool,
}

fn annotation(onset: f64, duration: Option<f64>, text: &str) -> SynthAnnotation {
    SynthAnnotation {
        onset,
        duration,
        text: text.into(),
    }
}

/// Runs the demo and returns the exit code.
pub fn run(args: &DemoArgs) -> i32 {
    if !(args.minutes > 0.0 && args.minutes <= 24.0 * 60.0) {
        eprintln!("theta demo: --minutes must be between 0 and 1440");
        return 2;
    }
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("theta demo: cannot create {}: {e}", args.dir.display());
        return 1;
    }
    let seconds = args.minutes * 60.0;
    // A routine-EEG-like session: activation procedures annotated as a technician would.
    let spec = SynthSpec {
        seed: 2024,
        n_channels: 21,
        sample_rate: 256.0,
        duration: seconds,
        annotations: vec![
            annotation(0.0, None, "Recording start"),
            annotation(seconds * 0.10, Some(20.0), "Eyes closed"),
            annotation(seconds * 0.30, Some(60.0), "Photic stimulation"),
            annotation(seconds * 0.55, Some(180.0), "Hyperventilation"),
            annotation(seconds * 0.90, None, "Recording end"),
        ],
        ..SynthSpec::default()
    };
    let path = args.dir.join("demo-routine-eeg.edf");
    let t0 = Instant::now();
    let summary = match write_synth_file(&spec, &path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("theta demo: cannot write {}: {e}", path.display());
            return 1;
        }
    };
    eprintln!(
        "theta demo: generated {} ({} channels, {} min, {:.1} MB) in {:.2} s",
        path.display(),
        spec.n_channels,
        args.minutes,
        summary.bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    eprintln!("theta demo: theta inspect {}", path.display());
    super::inspect::run(&super::inspect::InspectArgs {
        file: path,
        json: args.json,
        strict: true,
    })
}
