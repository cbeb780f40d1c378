//! `cnntui weights FILE [--model MODEL]`: the tensors of a weights file (name, dtype, shape)
//! and, with a model, which parameter each fills and how it is rearranged.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use cnntui::ir;
use cnntui::weights::{self, WeightsFile};

#[derive(Debug, Args)]
pub struct WeightsArgs {
    /// A weights file: safetensors, PyTorch .pth/.pt (zip or legacy), or a cnntui checkpoint.
    file: PathBuf,
    /// Show how the tensors map onto this model (RON); exits with status 2 if they do not fit.
    #[arg(long, value_name = "MODEL")]
    model: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

// The mapping error is kept until the listing is printed; it is built once, on the cold path.
#[allow(clippy::result_large_err)]
pub fn weights(args: WeightsArgs) -> Result<i32> {
    let file = WeightsFile::open(&args.file)?;
    let graph = match &args.model {
        Some(m) => Some(ir::load(m)?),
        None => None,
    };
    // The mapping error (if any) is reported after the listing, which helps to read it.
    let mapping = graph.as_ref().map(|g| weights::map(g, &file, None));
    let ok = mapping.as_ref().and_then(|m| m.as_ref().ok());
    let target: Vec<String> = (0..file.tensors.len())
        .map(|i| match (ok, &graph) {
            (Some(m), Some(g)) => {
                if let Some(a) = m.assignments.iter().find(|a| a.tensor == i) {
                    let node = &g.nodes[a.node];
                    let p = &node.params[a.param];
                    let shape: Vec<String> = p.shape.iter().map(usize::to_string).collect();
                    format!(
                        "{}/{} ({}), {}",
                        node.name,
                        p.name,
                        shape.join(", "),
                        a.layout.describe()
                    )
                } else if m.ignored.contains(&i) {
                    "(ignored)".into()
                } else {
                    "(unused)".into()
                }
            }
            _ => String::new(),
        })
        .collect();
    let preprocessing = match (ok, &graph) {
        (Some(m), Some(g)) => weights::preprocessing_of(g, &file, m),
        _ => None,
    };
    if args.json {
        let tensors: Vec<serde_json::Value> = file
            .tensors
            .iter()
            .zip(&target)
            .map(|(t, to)| {
                let mut o = serde_json::json!({
                    "name": t.name,
                    "dtype": t.dtype.to_string(),
                    "shape": t.shape,
                });
                if !to.is_empty() {
                    o["maps_to"] = serde_json::json!(to);
                }
                o
            })
            .collect();
        let mut v = serde_json::json!({
            "file": args.file.display().to_string(),
            "format": file.format.to_string(),
            "tensors": tensors,
        });
        if let Some(p) = &preprocessing {
            v["preprocessing"] = serde_json::json!(p.describe());
        }
        super::emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
    } else {
        use std::fmt::Write;
        let mut out = String::new();
        let elems: usize = file.tensors.iter().map(|t| t.elems()).sum();
        writeln!(
            out,
            "{}: {}, {} tensors, {} values",
            args.file.display(),
            file.format,
            file.tensors.len(),
            ir::thousands(elems)
        )?;
        let width = file
            .tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let shapes: Vec<String> = file
            .tensors
            .iter()
            .map(|t| format!("{:?}", t.shape))
            .collect();
        let sw = shapes.iter().map(String::len).max().unwrap_or(5).max(5);
        let arrow = if graph.is_some() { "  → model" } else { "" };
        let header = format!(
            "{:<width$}  {:<5}  {:<sw$}{arrow}",
            "name", "dtype", "shape"
        );
        writeln!(out, "{}", header.trim_end())?;
        for ((t, shape), to) in file.tensors.iter().zip(&shapes).zip(&target) {
            let to = if to.is_empty() {
                String::new()
            } else {
                format!("  → {to}")
            };
            let line = format!("{:<width$}  {:<5}  {:<sw$}{to}", t.name, t.dtype, shape);
            writeln!(out, "{}", line.trim_end())?;
        }
        if let Some(p) = &preprocessing {
            writeln!(out, "preprocessing: {}", p.describe())?;
        }
        super::emit(&out)?;
    }
    if let Some(m) = ok
        && !m.unused.is_empty()
    {
        eprintln!(
            "warning: {} tensor(s) are not used by the model: {}",
            m.unused.len(),
            weights::list_tensors(&file, &m.unused, 8)
        );
    }
    if let Some(Err(e)) = mapping {
        return Err(e.into());
    }
    Ok(0)
}
