//! Static mode: Gateway API, Service, EndpointSlice and Secret objects from YAML/JSON files.

use crate::model::{ObjectError, World};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Reads every `*.yaml`, `*.yml` and `*.json` file under `dir` (sorted, recursively), each
/// possibly with several documents or a `kind: List`. A file that does not parse is an
/// error naming it; objects of other kinds (Deployments, ...) are skipped.
pub fn read_dir(dir: &Path) -> Result<(World, Vec<ObjectError>), String> {
    let mut files = Vec::new();
    collect(dir, &mut files).map_err(|e| format!("--manifests {}: {e}", dir.display()))?;
    files.sort();
    let mut objects = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        objects.extend(parse_documents(&text).map_err(|e| format!("{}: {e}", file.display()))?);
    }
    Ok(World::from_objects(&objects))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Splits multi-document YAML into objects (`kind: List` unpacked, empty documents skipped).
pub fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(document).map_err(|e| format!("document {}: {e}", i + 1))?;
        match value {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                out.extend(
                    m.get("items")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            Value::Object(_) => out.push(value),
            _ => return Err(format!("document {}: not an object", i + 1)),
        }
    }
    Ok(out)
}
