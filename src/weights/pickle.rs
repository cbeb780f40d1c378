//! A pickle machine that can rebuild a PyTorch state dict and nothing else.
//!
//! Python's pickle format is a program for a stack machine, and unpickling may call any Python
//! function the pickle names. This machine knows the opcodes that `torch.save` emits for state
//! dicts (protocols 2 to 4) and exactly four kinds of callable: `torch._utils._rebuild_tensor_v2`,
//! `collections.OrderedDict`, and the typed storages `torch.FloatStorage` and its siblings as
//! persistent ids. Any other opcode or global is refused with its name; nothing is executed.
//!
//! The memo holds copies: a value fetched back is a snapshot of what was memoised, which is exact
//! for what state dicts share (strings, storage ids, tuples) though not for a container mutated
//! after being memoised and fetched again — no state dict does that.

use std::collections::HashMap;

use super::file::Dtype;

/// A Python value, restricted to what a state dict holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// A dict or `OrderedDict`, in insertion order.
    Dict(Vec<(Value, Value)>),
    Global(Global),
    Storage(StorageRef),
    Tensor(TensorRef),
}

/// The callables a pickle may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Global {
    RebuildTensorV2,
    OrderedDict,
    Storage(Dtype),
}

/// A storage named by a persistent id: its key in the file and its element type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StorageRef {
    pub key: String,
    pub dtype: Dtype,
}

/// A tensor as `_rebuild_tensor_v2` describes it: a strided view of a storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TensorRef {
    pub storage: StorageRef,
    /// In elements.
    pub offset: usize,
    pub shape: Vec<usize>,
    /// In elements.
    pub strides: Vec<usize>,
}

/// Why unpickling stopped.
#[derive(Debug)]
pub(crate) struct PickleError {
    /// Byte offset in the file of the opcode that failed.
    pub offset: usize,
    pub problem: String,
    /// The data ended in the middle of the pickle.
    pub truncated: bool,
}

/// Runs the pickle starting at `bytes[start]`; returns its value and the offset just after
/// its STOP opcode.
pub(crate) fn unpickle(bytes: &[u8], start: usize) -> Result<(Value, usize), PickleError> {
    let mut m = Machine {
        bytes,
        pos: start,
        op_at: start,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let value = m.run()?;
    Ok((value, m.pos))
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    op_at: usize,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
}

fn storage_dtype(name: &str) -> Option<Dtype> {
    Some(match name {
        "FloatStorage" => Dtype::F32,
        "DoubleStorage" => Dtype::F64,
        "HalfStorage" => Dtype::F16,
        "BFloat16Storage" => Dtype::BF16,
        "LongStorage" => Dtype::I64,
        "IntStorage" => Dtype::I32,
        "ShortStorage" => Dtype::I16,
        "CharStorage" => Dtype::I8,
        "ByteStorage" => Dtype::U8,
        "BoolStorage" => Dtype::Bool,
        _ => return None,
    })
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::Int(_) => "an int",
        Value::Float(_) => "a float",
        Value::Str(_) => "a str",
        Value::Bytes(_) => "bytes",
        Value::Tuple(_) => "a tuple",
        Value::List(_) => "a list",
        Value::Dict(_) => "a dict",
        Value::Global(_) => "a class",
        Value::Storage(_) => "a storage",
        Value::Tensor(_) => "a tensor",
    }
}

impl Machine<'_> {
    fn fail<T>(&self, problem: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            offset: self.op_at,
            problem: problem.into(),
            truncated: false,
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(PickleError {
                offset: self.op_at,
                problem: "the data ends in the middle of a pickle".into(),
                truncated: true,
            });
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos.min(self.bytes.len())..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return self.take(rest.len() + 1).map(|_| String::new());
        };
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<String, PickleError> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.fail("a string is not valid UTF-8"),
        }
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.fail("the pickle pops from an empty stack"),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(m) = self.marks.pop() else {
            return self.fail("the pickle uses a MARK it never set");
        };
        if m > self.stack.len() {
            return self.fail("the pickle's stack is shorter than its MARK");
        }
        Ok(self.stack.split_off(m))
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        if self.stack.is_empty() {
            return self.fail("the pickle reads an empty stack");
        }
        let last = self.stack.len() - 1;
        Ok(&mut self.stack[last])
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(v) => {
                self.stack.push(v.clone());
                Ok(())
            }
            None => self.fail(format!("the pickle fetches memo entry {key}, never stored")),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        let g = if (module, name) == ("torch._utils", "_rebuild_tensor_v2") {
            Global::RebuildTensorV2
        } else if (module, name) == ("collections", "OrderedDict") {
            Global::OrderedDict
        } else if module == "torch"
            && let Some(dtype) = storage_dtype(name)
        {
            Global::Storage(dtype)
        } else {
            return self.fail(format!(
                "it calls `{module}.{name}`, which cnntui does not run: a pickle may call any \
                 Python function, and cnntui runs only those that rebuild tensors; save the \
                 model's `state_dict()` (or use safetensors)"
            ));
        };
        self.stack.push(Value::Global(g));
        Ok(())
    }

    fn persistent(&mut self, pid: Value) -> Result<Value, PickleError> {
        let Value::Tuple(items) = pid else {
            return self.fail(format!(
                "a persistent id is {}, not a tuple",
                describe(&pid)
            ));
        };
        match &items[..] {
            [
                Value::Str(kind),
                Value::Global(Global::Storage(dtype)),
                key,
                ..,
            ] if kind == "storage" => {
                let key = match key {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    other => {
                        return self.fail(format!("a storage key is {}", describe(other)));
                    }
                };
                Ok(Value::Storage(StorageRef { key, dtype: *dtype }))
            }
            _ => self.fail("a persistent id is not a PyTorch storage"),
        }
    }

    fn reduce(&mut self, f: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Tuple(args) = args else {
            return self.fail("REDUCE's arguments are not a tuple");
        };
        match f {
            Value::Global(Global::RebuildTensorV2) => self.rebuild_tensor(args),
            Value::Global(Global::OrderedDict) => match args.as_slice() {
                [] => Ok(Value::Dict(Vec::new())),
                [Value::List(pairs)] => {
                    let mut d = Vec::new();
                    for p in pairs {
                        match p {
                            Value::Tuple(kv) if kv.len() == 2 => {
                                d.push((kv[0].clone(), kv[1].clone()))
                            }
                            _ => return self.fail("OrderedDict's items are not pairs"),
                        }
                    }
                    Ok(Value::Dict(d))
                }
                _ => self.fail("OrderedDict is called with unexpected arguments"),
            },
            other => self.fail(format!("the pickle calls {}", describe(&other))),
        }
    }

    fn rebuild_tensor(&self, args: Vec<Value>) -> Result<Value, PickleError> {
        let ints = |v: &Value| -> Option<Vec<usize>> {
            match v {
                Value::Tuple(xs) | Value::List(xs) => xs
                    .iter()
                    .map(|x| match x {
                        Value::Int(i) => usize::try_from(*i).ok(),
                        _ => None,
                    })
                    .collect(),
                _ => None,
            }
        };
        match args.as_slice() {
            [Value::Storage(s), Value::Int(offset), size, stride, ..] if args.len() <= 7 => {
                let (Some(shape), Some(strides), Ok(offset)) =
                    (ints(size), ints(stride), usize::try_from(*offset))
                else {
                    return self.fail("a tensor's size, stride or offset is not made of counts");
                };
                if shape.len() != strides.len() {
                    return self.fail("a tensor has as many strides as dimensions");
                }
                Ok(Value::Tensor(TensorRef {
                    storage: s.clone(),
                    offset,
                    shape,
                    strides,
                }))
            }
            _ => self.fail("_rebuild_tensor_v2 is called with unexpected arguments"),
        }
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let proto = self.u8()?;
                    if proto > 5 {
                        return self.fail(format!("unknown pickle protocol {proto}"));
                    }
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => return self.pop(),
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()));
                }
                0x8a => {
                    let n = usize::from(self.u8()?);
                    if n > 16 {
                        return self.fail("an integer is longer than 128 bits");
                    }
                    let b = self.take(n)?.to_vec();
                    let mut v: i128 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= i128::from(byte) << (8 * i);
                    }
                    if n > 0 && n < 16 && b[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    self.stack.push(Value::Int(v));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let Ok(n) = usize::try_from(n) else {
                        return self.fail("a string is longer than memory");
                    };
                    let s = self.string(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'C' => {
                    let n = usize::from(self.u8()?);
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return self.fail("a tuple takes more items than the stack holds");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b']' => self.stack.push(Value::List(Vec::new())),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.push(v),
                        _ => return self.fail("APPEND to something not a list"),
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.extend(items),
                        _ => return self.fail("APPENDS to something not a list"),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    match self.top()? {
                        Value::Dict(d) => d.push((k, v)),
                        _ => return self.fail("SETITEM on something not a dict"),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return self.fail("SETITEMS with an odd number of items");
                    }
                    let mut it = items.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    match self.top()? {
                        Value::Dict(d) => d.extend(pairs),
                        _ => return self.fail("SETITEMS on something not a dict"),
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return self.fail("STACK_GLOBAL's module and name are not strings");
                    };
                    self.global(&module, &name)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.stack.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.reduce(f, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // The state of an OrderedDict (its `_metadata`) or a tensor: not needed.
                    let _state = self.pop()?;
                    match self.top()? {
                        Value::Dict(_) | Value::Tensor(_) => {}
                        _ => return self.fail("BUILD on something not a dict or tensor"),
                    }
                }
                0x94 => {
                    let key = self.memo.len() as u32;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.le()?);
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(k.into())?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.le()?);
                    self.memo_get(k)?;
                }
                other => {
                    return self.fail(format!(
                        "opcode 0x{other:02x} is not one a PyTorch state dict uses"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_an_ordered_dict_of_tensors() {
        // Protocol 2, hand-assembled: OrderedDict() with one tensor of shape (2, 3).
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00w");
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x06tQ");
        p.extend(b"K\x00K\x02K\x03\x86K\x03K\x01\x86\x89ccollections\nOrderedDict\n)RtRu.");
        let (v, end) = unpickle(&p, 0).expect("unpickles");
        assert_eq!(end, p.len());
        let Value::Dict(d) = v else {
            panic!("not a dict: {v:?}")
        };
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0, Value::Str("w".into()));
        let Value::Tensor(t) = &d[0].1 else {
            panic!("not a tensor")
        };
        assert_eq!(t.shape, vec![2, 3]);
        assert_eq!(t.strides, vec![3, 1]);
        assert_eq!(t.storage.dtype, Dtype::F32);
        assert_eq!(t.storage.key, "0");
    }

    #[test]
    fn refuses_other_globals_by_name() {
        let p = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsR.";
        let e = unpickle(p, 0).expect_err("refused");
        assert!(e.problem.contains("`os.system`"), "{}", e.problem);
    }

    #[test]
    fn a_cut_pickle_is_truncated() {
        let p = b"\x80\x02X\x09\x00\x00\x00abc";
        let e = unpickle(p, 0).expect_err("truncated");
        assert!(e.truncated);
    }

    #[test]
    fn long1_reads_the_legacy_magic_number() {
        let p = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
        let (v, _) = unpickle(p, 0).expect("unpickles");
        assert_eq!(v, Value::Int(0x1950a86a20f9469cfc6c));
    }
}
