//! Reader for the Python version: each batch is a pickled dict with `data`, a
//! NumPy uint8 array of 10000 x 3072, and `labels`, a list of ints.
//!
//! A small pickle machine that knows the opcodes Python 2 and 3 emit for such
//! files (protocols 0 to 5) and rebuilds NumPy arrays from their records:
//! `_reconstruct` + `__setstate__` (protocols 2 to 4) or `_frombuffer` over an
//! in-band buffer (protocol 5). It executes nothing: the only calls it
//! evaluates are `_codecs.encode(text, "latin1")` and `bytes()`/`bytearray()`,
//! which is how Python 3 writes `bytes` at protocol 2. serde-pickle does not
//! model GLOBAL/REDUCE/BUILD, which NumPy arrays need, hence this reader.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use super::batch::{read_batch_file, Batch, CLASSES, PIXELS, RECORDS_PER_FILE};

/// A value on the pickle machine's stack.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// The MARK sentinel.
    Mark,
    /// None.
    None,
    /// Booleans.
    Bool(bool),
    /// Integers.
    Int(i64),
    /// Floats.
    Float(f64),
    /// Byte strings (Python 2 `str`, Python 3 `bytes`).
    Bytes(Vec<u8>),
    /// Text strings.
    Str(String),
    /// Lists.
    List(Vec<Value>),
    /// Tuples.
    Tuple(Vec<Value>),
    /// Dicts, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A reference to `module.name`.
    Global(String, String),
    /// An object made by calling `callable(args)`, then `__setstate__(state)`.
    Object {
        /// What was called (usually a `Global`).
        callable: Box<Value>,
        /// Its arguments (a tuple).
        args: Box<Value>,
        /// The state given by BUILD, if any.
        state: Option<Box<Value>>,
    },
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.pos + n > self.b.len() {
            bail!(
                "unexpected end of pickle at byte {}: the file is truncated",
                self.pos
            );
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String> {
        let start = self.pos;
        while self.pos < self.b.len() && self.b[self.pos] != b'\n' {
            self.pos += 1;
        }
        let s = String::from_utf8_lossy(&self.b[start..self.pos]).into_owned();
        self.take(1)?;
        Ok(s)
    }
}

fn pop(stack: &mut Vec<Value>) -> Result<Value> {
    stack
        .pop()
        .ok_or_else(|| anyhow!("pickle stack underflow: the file is corrupt"))
}

fn pop_mark(stack: &mut Vec<Value>) -> Result<Vec<Value>> {
    let at = stack
        .iter()
        .rposition(|v| *v == Value::Mark)
        .ok_or_else(|| anyhow!("pickle MARK missing"))?;
    let items = stack.split_off(at + 1);
    stack.pop();
    Ok(items)
}

/// Runs the pickle in `bytes` and returns the value it builds.
pub fn unpickle(bytes: &[u8]) -> Result<Value> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.take(8)?; // FRAME
            }
            0x96 => {
                // BYTEARRAY8: an in-band buffer (protocol 5), e.g. a NumPy array's data.
                let n = u64::from_le_bytes(r.take(8)?.try_into().unwrap()) as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            0x97 => bail!(
                "the pickle uses an out-of-band buffer (NEXT_BUFFER), whose data is not in the file: \
                 pickle it again without buffer_callback"
            ),
            0x98 => {} // READONLY_BUFFER: read-only makes no difference here.
            b'0' => {
                pop(&mut stack)?;
            }
            b'1' => {
                pop_mark(&mut stack)?;
            }
            b'2' => {
                let top = stack
                    .last()
                    .cloned()
                    .ok_or_else(|| anyhow!("DUP on empty stack"))?;
                stack.push(top);
            }
            b'I' => {
                let line = r.line()?;
                stack.push(match line.as_str() {
                    "00" => Value::Bool(false),
                    "01" => Value::Bool(true),
                    t => Value::Int(t.parse().map_err(|_| anyhow!("bad INT {t:?}"))?),
                });
            }
            b'L' => {
                let line = r.line()?;
                let t = line.trim_end_matches('L');
                stack.push(Value::Int(
                    t.parse().map_err(|_| anyhow!("bad LONG {t:?}"))?,
                ));
            }
            b'F' => {
                let t = r.line()?;
                stack.push(Value::Float(
                    t.parse().map_err(|_| anyhow!("bad FLOAT {t:?}"))?,
                ));
            }
            b'S' => {
                // Protocol 0 string: a quoted Python literal; quotes stripped, no escapes.
                let t = r.line()?;
                let t = t.trim();
                let inner = t.get(1..t.len().saturating_sub(1)).unwrap_or("");
                stack.push(Value::Bytes(inner.as_bytes().to_vec()));
            }
            b'V' => {
                let t = r.line()?;
                stack.push(Value::Str(t));
            }
            0x8b => {
                let n = r.u32()? as usize;
                let b = r.take(n)?;
                if n > 8 {
                    bail!("integer of {n} bytes is too large");
                }
                let mut v: i64 = 0;
                for (i, &x) in b.iter().enumerate() {
                    v |= (x as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            0x8d => {
                let n = u64::from_le_bytes(r.take(8)?.try_into().unwrap()) as usize;
                stack.push(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            0x8f => stack.push(Value::List(vec![])), // EMPTY_SET, kept as a list
            0x90 => {
                let items = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(l)) => l.extend(items),
                    _ => bail!("ADDITEMS to a non-set"),
                }
            }
            0x91 => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::List(items));
            }
            0x92 => {
                // NEWOBJ_EX: cls, args, kwargs.
                let _kwargs = pop(&mut stack)?;
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(call(callable, args));
            }
            0x82..=0x84 => bail!("the pickle uses the extension registry (EXT opcodes), which is not supported"),
            b'.' => return pop(&mut stack),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(
                u16::from_le_bytes(r.take(2)?.try_into().unwrap()) as i64,
            )),
            b'J' => stack.push(Value::Int(
                i32::from_le_bytes(r.take(4)?.try_into().unwrap()) as i64,
            )),
            0x8a => {
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                let mut v: i64 = 0;
                for (i, &x) in b.iter().enumerate().take(8) {
                    v |= (x as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => stack.push(Value::Float(f64::from_be_bytes(
                r.take(8)?.try_into().unwrap(),
            ))),
            b'U' | b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'T' | b'B' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            0x8e => {
                let n = u64::from_le_bytes(r.take(8)?.try_into().unwrap()) as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(String::from_utf8_lossy(r.take(n)?).into_owned()));
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(module, name));
            }
            0x93 => {
                let name = pop(&mut stack)?;
                let module = pop(&mut stack)?;
                match (module, name) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                    _ => bail!("STACK_GLOBAL without module and name strings"),
                }
            }
            b'q' => {
                let i = r.u8()? as u32;
                memo.insert(
                    i,
                    stack
                        .last()
                        .cloned()
                        .ok_or_else(|| anyhow!("BINPUT on empty stack"))?,
                );
            }
            b'r' => {
                let i = r.u32()?;
                memo.insert(
                    i,
                    stack
                        .last()
                        .cloned()
                        .ok_or_else(|| anyhow!("LONG_BINPUT on empty stack"))?,
                );
            }
            0x94 => {
                let i = memo.len() as u32;
                memo.insert(
                    i,
                    stack
                        .last()
                        .cloned()
                        .ok_or_else(|| anyhow!("MEMOIZE on empty stack"))?,
                );
            }
            b'p' => {
                let line = r.line()?;
                let i: u32 = line.parse().map_err(|_| anyhow!("bad PUT {line:?}"))?;
                memo.insert(
                    i,
                    stack
                        .last()
                        .cloned()
                        .ok_or_else(|| anyhow!("PUT on empty stack"))?,
                );
            }
            b'g' => {
                let line = r.line()?;
                let i: u32 = line.parse().map_err(|_| anyhow!("bad GET {line:?}"))?;
                stack.push(
                    memo.get(&i)
                        .cloned()
                        .ok_or_else(|| anyhow!("memo {i} missing"))?,
                );
            }
            b'h' => {
                let i = r.u8()? as u32;
                stack.push(
                    memo.get(&i)
                        .cloned()
                        .ok_or_else(|| anyhow!("memo {i} missing"))?,
                );
            }
            b'j' => {
                let i = r.u32()?;
                stack.push(
                    memo.get(&i)
                        .cloned()
                        .ok_or_else(|| anyhow!("memo {i} missing"))?,
                );
            }
            b')' => stack.push(Value::Tuple(vec![])),
            b']' => stack.push(Value::List(vec![])),
            b'}' => stack.push(Value::Dict(vec![])),
            0x85 => {
                let a = pop(&mut stack)?;
                stack.push(Value::Tuple(vec![a]));
            }
            0x86 => {
                let b = pop(&mut stack)?;
                let a = pop(&mut stack)?;
                stack.push(Value::Tuple(vec![a, b]));
            }
            0x87 => {
                let c = pop(&mut stack)?;
                let b = pop(&mut stack)?;
                let a = pop(&mut stack)?;
                stack.push(Value::Tuple(vec![a, b, c]));
            }
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            b'l' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::List(items));
            }
            b'a' => {
                let v = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(l)) => l.push(v),
                    _ => bail!("APPEND to a non-list"),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(l)) => l.extend(items),
                    _ => bail!("APPENDS to a non-list"),
                }
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.push((k, v)),
                    _ => bail!("SETITEM on a non-dict"),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => {
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                    _ => bail!("SETITEMS on a non-dict"),
                }
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(call(callable, args));
            }
            b'b' => {
                let st = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Object { state, .. }) => *state = Some(Box::new(st)),
                    _ => bail!("BUILD on a non-object"),
                }
            }
            other => bail!(
                "unsupported pickle opcode 0x{other:02x} at byte {}",
                r.pos - 1
            ),
        }
    }
}

/// The value of `callable(args)`: the few calls whose result is plain data are
/// evaluated (how Python 3 writes `bytes` at protocol 2:
/// `_codecs.encode("...", "latin1")`, and `bytes()`/`bytearray()`); anything
/// else is kept as an [`Value::Object`] record.
fn call(callable: Value, args: Value) -> Value {
    if let (Value::Global(module, name), Value::Tuple(a)) = (&callable, &args) {
        let builtin = module == "__builtin__" || module == "builtins";
        match (module.as_str(), name.as_str(), a.as_slice()) {
            ("_codecs", "encode", [Value::Str(text), Value::Str(enc)])
                if matches!(enc.as_str(), "latin1" | "latin-1" | "iso-8859-1") =>
            {
                if let Some(bytes) = text
                    .chars()
                    .map(|c| u8::try_from(c as u32).ok())
                    .collect::<Option<Vec<u8>>>()
                {
                    return Value::Bytes(bytes);
                }
            }
            (_, "bytes" | "bytearray", []) if builtin => return Value::Bytes(vec![]),
            (_, "bytes" | "bytearray", [Value::Bytes(b)]) if builtin => {
                return Value::Bytes(b.clone())
            }
            _ => {}
        }
    }
    Value::Object {
        callable: Box::new(callable),
        args: Box::new(args),
        state: None,
    }
}

fn key_is(k: &Value, name: &str) -> bool {
    match k {
        Value::Bytes(b) => b == name.as_bytes(),
        Value::Str(s) => s == name,
        _ => false,
    }
}

/// Looks up `name` (bytes or text key) in a dict value.
pub fn dict_get<'v>(dict: &'v Value, name: &str) -> Option<&'v Value> {
    match dict {
        Value::Dict(items) => items.iter().find(|(k, _)| key_is(k, name)).map(|(_, v)| v),
        _ => None,
    }
}

/// The dtype code of a `numpy.dtype(...)` record (e.g. `"u1"`), if it has one.
fn dtype_code(v: &Value) -> Option<String> {
    let Value::Object { args, .. } = v else {
        return None;
    };
    let Value::Tuple(a) = args.as_ref() else {
        return None;
    };
    match a.first() {
        Some(Value::Bytes(t)) => Some(String::from_utf8_lossy(t).into_owned()),
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

fn shape_of(v: &Value) -> Result<Vec<usize>> {
    let Value::Tuple(shape) = v else {
        bail!("`data` array shape is not a tuple")
    };
    shape
        .iter()
        .map(|s| match s {
            Value::Int(i) if *i >= 0 => Ok(*i as usize),
            _ => Err(anyhow!("`data` array shape is not made of integers")),
        })
        .collect()
}

/// Extracts (shape, raw bytes) from a NumPy uint8 array rebuilt by the pickle:
/// `_reconstruct(...)` with the state `(version, shape, dtype, is_fortran,
/// raw)` (protocols 2 to 4), or `_frombuffer(buffer, dtype, shape, order)`
/// (protocol 5).
fn numpy_u8(v: &Value) -> Result<(Vec<usize>, &[u8])> {
    let Value::Object {
        callable,
        args,
        state,
    } = v
    else {
        bail!("`data` is not a NumPy array");
    };
    let (shape, dtype, fortran, raw) = match (callable.as_ref(), state) {
        (Value::Global(_, name), None) if name == "_frombuffer" => {
            let Value::Tuple(a) = args.as_ref() else {
                bail!("`data` array arguments are not a tuple")
            };
            if a.len() != 4 {
                bail!("`data` _frombuffer has {} arguments, expected 4", a.len());
            }
            let fortran = matches!(&a[3], Value::Str(o) if o == "F");
            (shape_of(&a[2])?, &a[1], fortran, &a[0])
        }
        (_, Some(state)) => {
            let Value::Tuple(parts) = state.as_ref() else {
                bail!("`data` array state is not a tuple")
            };
            if parts.len() != 5 {
                bail!("`data` array state has {} fields, expected 5", parts.len());
            }
            let fortran = parts[3] == Value::Bool(true);
            (shape_of(&parts[1])?, &parts[2], fortran, &parts[4])
        }
        _ => bail!("`data` is not a NumPy array (no array state)"),
    };
    if let Some(code) = dtype_code(dtype) {
        if code != "u1" {
            bail!("`data` array has dtype {code}, expected uint8 (u1)");
        }
    }
    if fortran {
        bail!("`data` array is Fortran-ordered, expected C order");
    }
    let raw = match raw {
        Value::Bytes(b) => b.as_slice(),
        Value::Str(s) => s.as_bytes(),
        _ => bail!("`data` array has no raw bytes"),
    };
    Ok((shape, raw))
}

/// The keys of a dict value, for messages.
fn keys(dict: &Value) -> String {
    match dict {
        Value::Dict(items) => items
            .iter()
            .map(|(k, _)| match k {
                Value::Bytes(b) => format!("b'{}'", String::from_utf8_lossy(b)),
                Value::Str(s) => format!("'{s}'"),
                other => format!("{other:?}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none: the pickle holds no dict".to_string(),
    }
}

/// Images of a pickled batch of any size, before the release's size checks.
#[derive(Clone, Debug, PartialEq)]
pub struct PickledImages {
    /// Shape of the `data` array, [images, 3072] for CIFAR-10.
    pub shape: Vec<usize>,
    /// The array's bytes, row-major (C order): image i is row i.
    pub pixels: Vec<u8>,
    /// One label per image, 0..9.
    pub labels: Vec<u8>,
}

/// Reads `data` (a NumPy uint8 array) and `labels` (a list of ints) from a
/// pickled dict with text or bytes keys, of any protocol from 0 to 5.
pub fn parse_images(bytes: &[u8]) -> Result<PickledImages> {
    parse_labelled(bytes, "labels", CLASSES)
}

/// Reads `data` (a NumPy uint8 array) and the list of ints `label_key`, each
/// checked to be below `classes`, from a pickled dict (CIFAR-100 names its
/// labels `fine_labels` and `coarse_labels`).
pub fn parse_labelled(bytes: &[u8], label_key: &str, classes: usize) -> Result<PickledImages> {
    let root = unpickle(bytes)?;
    let data = dict_get(&root, "data")
        .ok_or_else(|| anyhow!("the pickle has no `data` entry (its keys: {})", keys(&root)))?;
    let labels = dict_get(&root, label_key).ok_or_else(|| {
        anyhow!(
            "the pickle has no `{label_key}` entry (its keys: {})",
            keys(&root)
        )
    })?;
    let (shape, raw) = numpy_u8(data)?;
    let Value::List(labels) = labels else {
        bail!("`labels` is not a list")
    };
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, l)| match l {
            Value::Int(v) if (0..classes as i64).contains(v) => Ok(*v as u8),
            other => Err(anyhow!(
                "label {i} is {other:?}, expected 0-{}: the file is corrupt",
                classes - 1
            )),
        })
        .collect::<Result<Vec<u8>>>()?;
    Ok(PickledImages {
        shape,
        pixels: raw.to_vec(),
        labels,
    })
}

/// Parses one Python-version batch (`name` is used in messages only).
pub fn parse_batch(name: &str, bytes: &[u8]) -> Result<Batch> {
    let PickledImages {
        shape,
        pixels,
        labels,
    } = parse_images(bytes)?;
    if shape != [RECORDS_PER_FILE, PIXELS] {
        bail!("`data` has shape {shape:?}, expected [{RECORDS_PER_FILE}, {PIXELS}] (10000 images of 3072 uint8)");
    }
    if pixels.len() != RECORDS_PER_FILE * PIXELS {
        bail!(
            "`data` holds {} bytes, expected {}: the file is truncated",
            pixels.len(),
            RECORDS_PER_FILE * PIXELS
        );
    }
    if labels.len() != RECORDS_PER_FILE {
        bail!(
            "`labels` has {} entries, expected {RECORDS_PER_FILE}",
            labels.len()
        );
    }
    Ok(Batch {
        name: name.to_string(),
        labels,
        pixels,
    })
}

/// Reads and checks one Python-version batch file.
pub fn read_batch(path: &Path) -> Result<Batch> {
    let (name, bytes) = read_batch_file(
        path,
        "a CIFAR-10 Python folder holds data_batch_1..data_batch_5 and test_batch",
        // 10,000 images of 3,072 bytes, their labels and file names: 31 MB
        // in the official files; twice that is never a batch.
        64 << 20,
    )?;
    parse_batch(&name, &bytes)
        .with_context(|| format!("{}: not a CIFAR-10 Python batch", path.display()))
}

/// The strings of the list `key` of a pickled dict (CIFAR-100's `meta`
/// file: `fine_label_names`, `coarse_label_names`).
pub fn string_list(bytes: &[u8], key: &str) -> Result<Vec<String>> {
    let root = unpickle(bytes)?;
    let Some(Value::List(items)) = dict_get(&root, key) else {
        bail!("the pickle has no list `{key}` (its keys: {})", keys(&root));
    };
    items
        .iter()
        .map(|v| match v {
            Value::Str(s) => Ok(s.clone()),
            Value::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            other => Err(anyhow!("`{key}` holds {other:?}, expected strings")),
        })
        .collect()
}

/// Writes a batch as Python 2's cPickle (protocol 2) does for the official
/// files; for tests and generated data.
pub fn encode_batch(labels: &[i64], shape: (usize, usize), pixels: &[u8]) -> Vec<u8> {
    encode_labelled(&[("labels", labels)], shape, pixels)
}

/// Writes a short string as protocol 2's SHORT_BINSTRING.
fn short(o: &mut Vec<u8>, s: &str) {
    o.push(b'U');
    o.push(s.len() as u8);
    o.extend_from_slice(s.as_bytes());
}

/// Writes a dict of lists of strings, as CIFAR-100's `meta` file holds its
/// class names; for tests.
pub fn encode_string_lists(lists: &[(&str, &[String])]) -> Vec<u8> {
    let mut o = vec![0x80, 2, b'}', b'('];
    for (key, items) in lists {
        short(&mut o, key);
        o.extend_from_slice(b"](");
        for item in *items {
            short(&mut o, item);
        }
        o.push(b'e');
    }
    o.extend_from_slice(b"u.");
    o
}

/// [`encode_batch`] with any label lists (`fine_labels`, `coarse_labels`).
pub fn encode_labelled(labels: &[(&str, &[i64])], shape: (usize, usize), pixels: &[u8]) -> Vec<u8> {
    let mut o = vec![0x80, 2, b'}', b'('];
    short(&mut o, "data");
    o.extend_from_slice(b"cnumpy.core.multiarray\n_reconstruct\n");
    o.extend_from_slice(b"cnumpy\nndarray\n");
    o.extend_from_slice(&[b'K', 0, 0x85]);
    short(&mut o, "b");
    o.extend_from_slice(&[0x87, b'R', b'(', b'K', 1]);
    o.extend_from_slice(b"J");
    o.extend_from_slice(&(shape.0 as i32).to_le_bytes());
    o.extend_from_slice(b"M");
    o.extend_from_slice(&(shape.1 as u16).to_le_bytes());
    o.push(0x86);
    o.extend_from_slice(b"cnumpy\ndtype\n");
    short(&mut o, "u1");
    o.extend_from_slice(&[b'K', 0, b'K', 1, 0x87, b'R', b'(', b'K', 3]);
    short(&mut o, "|");
    o.extend_from_slice(b"NNNJ");
    o.extend_from_slice(&(-1i32).to_le_bytes());
    o.push(b'J');
    o.extend_from_slice(&(-1i32).to_le_bytes());
    o.extend_from_slice(&[b'K', 0, b't', b'b', 0x89, b'T']);
    o.extend_from_slice(&(pixels.len() as u32).to_le_bytes());
    o.extend_from_slice(pixels);
    o.extend_from_slice(b"tb");
    for (key, labels) in labels {
        short(&mut o, key);
        o.extend_from_slice(b"](");
        for &l in *labels {
            o.push(b'J');
            o.extend_from_slice(&(l as i32).to_le_bytes());
        }
        o.push(b'e');
    }
    short(&mut o, "batch_label");
    short(&mut o, "generated");
    o.extend_from_slice(b"u.");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_generated_batch() {
        let labels: Vec<i64> = (0..10_000).map(|i| i % 10).collect();
        let pixels: Vec<u8> = (0..10_000 * 3072).map(|i| (i % 251) as u8).collect();
        let b = parse_batch("x", &encode_batch(&labels, (10_000, 3072), &pixels)).unwrap();
        assert_eq!(b.labels.len(), 10_000);
        assert_eq!(b.labels[13], 3);
        assert_eq!(b.pixels, pixels);
    }

    #[test]
    fn wrong_shape_is_rejected() {
        let labels: Vec<i64> = (0..10_000).map(|i| i % 10).collect();
        let pixels = vec![0u8; 10_000 * 1024];
        let err = parse_batch("x", &encode_batch(&labels, (10_000, 1024), &pixels)).unwrap_err();
        assert!(
            format!("{err:#}").contains("shape [10000, 1024]"),
            "{err:#}"
        );
    }

    #[test]
    fn bad_label_and_truncation_are_rejected() {
        let mut labels: Vec<i64> = (0..10_000).map(|i| i % 10).collect();
        labels[5] = 12;
        let pixels = vec![0u8; 10_000 * 3072];
        let err = parse_batch("x", &encode_batch(&labels, (10_000, 3072), &pixels)).unwrap_err();
        assert!(format!("{err:#}").contains("label 5 is Int(12)"), "{err:#}");
        let good = encode_batch(&[0; 10_000], (10_000, 3072), &pixels);
        let err = parse_batch("x", &good[..good.len() / 2]).unwrap_err();
        assert!(format!("{err:#}").contains("truncated"), "{err:#}");
    }
}
