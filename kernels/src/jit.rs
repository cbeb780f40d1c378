//! The JIT: one owner of the Cranelift `JITModule`, and the helpers every kernel emitter uses.
//!
//! Kernels are compiled in batches: [`Jit::define`] emits one function per kernel spec, then
//! [`Jit::finish`] finalises them all at once and hands back [`Kernel`]s, callable values that
//! keep the machine code alive (the code is freed when the last kernel of the batch is
//! dropped).
//!
//! Every kernel has one C signature, `fn(buffers: *const *mut u8, start: usize, end: usize)`:
//! `buffers` is an array of the kernel's buffer pointers (each emitter documents its order),
//! and `[start, end)` is the range of work items this call covers (each emitter documents what
//! an item is — usually an output row of the batch), so that the runtime splits work across
//! threads by calling the same kernel on disjoint ranges.
//!
//! Facts about Cranelift 0.135 on x86-64 that shape the emitters: only 128-bit vectors
//! (`f32x4`) lower; `fma.f32x4` is one `vfmadd` only when the ISA has FMA (checked in
//! [`Jit::new`]); `fmax.f32x4` lowers to 8 instructions while `bitselect(fcmp lt a b, b, a)`
//! is one `vmaxps`; with `opt_level=speed` the optimiser hoists loads and spills, so we
//! compile with `opt_level=none` and emit well-scheduled IR ourselves.
//!
//! `unsafe` in this crate lives here only, each block with a `// SAFETY:` line.

pub mod backward;
pub mod builder;
pub mod conv;
pub mod dense;
pub mod elementwise;
pub mod optimizer;
pub mod pool;

use std::sync::{Arc, Mutex};

use cranelift_codegen::ir::{AbiParam, types};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};

pub use builder::Emit;

/// The C signature of every JIT kernel.
pub type KernelFn = unsafe extern "C" fn(buffers: *const *mut u8, start: usize, end: usize);

/// Why a kernel could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum JitError {
    #[error("this CPU has no FMA; cnntui's JIT needs x86-64 with FMA (use `--backend reference`)")]
    NoFma,
    #[error("cannot set up Cranelift for this machine: {0}")]
    Setup(String),
    /// A verifier or code-generation error, with the kernel it happened in.
    #[error("Cranelift rejected kernel `{kernel}`: {message}")]
    Codegen { kernel: String, message: String },
    /// The emitter does not handle this spec; the caller falls back to the reference kernel.
    #[error("unsupported by the JIT: {0}")]
    Unsupported(String),
}

/// Owns the code of one finished batch; frees it when the last [`Kernel`] goes.
struct Code(Mutex<Option<JITModule>>);

impl Drop for Code {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.0.lock()
            && let Some(module) = guard.take()
        {
            // SAFETY: `Code` is dropped only when no `Kernel` (which holds an `Arc<Code>`)
            // exists any more, so no pointer into this module can be called again.
            unsafe { module.free_memory() };
        }
    }
}

/// A compiled kernel: a function pointer and the code it lives in.
#[derive(Clone)]
pub struct Kernel {
    name: Arc<str>,
    f: KernelFn,
    _code: Arc<Code>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernel({})", self.name)
    }
}

impl Kernel {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs work items `[start, end)`.
    ///
    /// # Safety
    /// `buffers` must hold, in the order the kernel's emitter documents, pointers to buffers
    /// at least as large as its spec requires, valid for the kernel's reads and writes; calls
    /// running at the same time must write disjoint parts of every output (disjoint ranges do).
    pub unsafe fn call(&self, buffers: &[*mut u8], start: usize, end: usize) {
        // SAFETY: the caller upholds the contract above; the code is alive while `self` is.
        unsafe { (self.f)(buffers.as_ptr(), start, end) }
    }
}

/// The JIT compiler: a `JITModule` being filled, with reusable contexts.
pub struct Jit {
    isa: OwnedTargetIsa,
    module: JITModule,
    ctx: cranelift_codegen::Context,
    fctx: FunctionBuilderContext,
    /// Every defined function with its name and machine-code size in bytes.
    pending: Vec<(FuncId, String, usize)>,
    disasm: Option<String>,
}

impl Jit {
    /// A JIT for this machine.
    ///
    /// # Errors
    /// [`JitError::NoFma`] when the CPU has no FMA, [`JitError::Setup`] otherwise.
    pub fn new() -> Result<Self, JitError> {
        let setup = |e: &dyn std::fmt::Display| JitError::Setup(e.to_string());
        let mut flags = settings::builder();
        flags.set("opt_level", "none").map_err(|e| setup(&e))?;
        flags
            .set("use_colocated_libcalls", "false")
            .map_err(|e| setup(&e))?;
        flags.set("is_pic", "false").map_err(|e| setup(&e))?;
        let isa_builder = cranelift_native::builder().map_err(|e| setup(&e))?;
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| setup(&e))?;
        let has_fma = isa
            .isa_flags()
            .iter()
            .any(|f| f.name == "has_fma" && f.as_bool() == Some(true));
        if !has_fma {
            return Err(JitError::NoFma);
        }
        let module = JITModule::new(JITBuilder::with_isa(
            isa.clone(),
            cranelift_module::default_libcall_names(),
        ));
        let ctx = module.make_context();
        Ok(Jit {
            isa,
            module,
            ctx,
            fctx: FunctionBuilderContext::new(),
            pending: Vec::new(),
            disasm: None,
        })
    }

    /// Defines one kernel named `name`; `body` emits its code with an [`Emit`] positioned in
    /// the entry block, whose parameters are the buffer array, `start` and `end`. The body
    /// must not emit the final `return` (it is added here).
    ///
    /// # Errors
    /// [`JitError::Codegen`] with the kernel's name for verifier and code-generation errors;
    /// whatever `body` returns.
    pub fn define(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut Emit<'_, '_>) -> Result<(), JitError>,
    ) -> Result<(), JitError> {
        let frontend = self.module.target_config();
        let ptr = frontend.pointer_type();
        self.module.clear_context(&mut self.ctx);
        let sig = &mut self.ctx.func.signature;
        sig.params.extend([
            AbiParam::new(ptr),
            AbiParam::new(types::I64),
            AbiParam::new(types::I64),
        ]);
        let codegen = |message: String| JitError::Codegen {
            kernel: name.to_string(),
            message,
        };
        let id = self
            .module
            .declare_function(
                &format!("{name}#{}", self.pending.len()),
                Linkage::Local,
                &self.ctx.func.signature,
            )
            .map_err(|e| codegen(e.to_string()))?;
        {
            let mut b = FunctionBuilder::new(&mut self.ctx.func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            b.seal_block(entry);
            let params = b.block_params(entry).to_vec();
            let mut emit = Emit::new(&mut b, ptr, params[0], params[1], params[2]);
            body(&mut emit)?;
            emit.finish();
            b.finalize(frontend);
        }
        let want_disasm = self.disasm.is_some();
        self.ctx.set_disasm(want_disasm);
        self.module
            .define_function(id, &mut self.ctx)
            .map_err(|e| codegen(format!("{e:?}")))?;
        let compiled = self.ctx.compiled_code();
        let size = compiled.map_or(0, |c| c.code_buffer().len());
        if want_disasm {
            self.disasm = compiled.and_then(|c| c.vcode.clone());
        }
        self.pending.push((id, name.to_string(), size));
        Ok(())
    }

    /// How many kernels are defined so far (see [`Jit::truncate`]).
    pub fn defined(&self) -> usize {
        self.pending.len()
    }

    /// Forgets the kernels defined after the first `len` (a group that turned out to be
    /// unsupported half-way); their code is never fetched by [`Jit::finish`].
    pub fn truncate(&mut self, len: usize) {
        self.pending.truncate(len);
    }

    /// Keeps the machine code of every kernel defined from now on as text, for inspection
    /// (spills, scheduling); see [`Jit::last_disasm`].
    pub fn keep_disasm(&mut self) {
        self.disasm.get_or_insert_with(String::new);
    }

    /// The machine code of the last defined kernel, when [`Jit::keep_disasm`] is on.
    pub fn last_disasm(&self) -> Option<&str> {
        self.disasm.as_deref().filter(|d| !d.is_empty())
    }

    /// Finalises every defined kernel, in definition order.
    ///
    /// # Errors
    /// [`JitError::Codegen`] when relocation or finalisation fails.
    pub fn finish(mut self) -> Result<Vec<Kernel>, JitError> {
        self.module
            .finalize_definitions()
            .map_err(|e| JitError::Codegen {
                kernel: "(batch)".into(),
                message: e.to_string(),
            })?;
        let pointers: Vec<(*const u8, String)> = self
            .pending
            .iter()
            .map(|(id, name, _)| (self.module.get_finalized_function(*id), name.clone()))
            .collect();
        if let Some(dest) = std::env::var_os("CNNTUI_PERF_MAP") {
            write_perf_map(
                &dest,
                pointers
                    .iter()
                    .zip(&self.pending)
                    .map(|((p, n), s)| (*p, n, s.2)),
            );
        }
        let code = Arc::new(Code(Mutex::new(Some(self.module))));
        Ok(pointers
            .into_iter()
            .map(|(p, name)| Kernel {
                name: name.into(),
                // SAFETY: `p` points at a finalised function compiled with `KernelFn`'s
                // signature (pointer, i64, i64 under the platform's C calling convention).
                f: unsafe { std::mem::transmute::<*const u8, KernelFn>(p) },
                _code: code.clone(),
            })
            .collect())
    }

    /// The target this JIT compiles for.
    pub fn isa(&self) -> &OwnedTargetIsa {
        &self.isa
    }
}

/// Appends the kernels' addresses, sizes and names to `/tmp/perf-PID.map`, the file `perf
/// report` reads to name JIT code (`dest` is the value of `CNNTUI_PERF_MAP`). Best effort: a
/// profiling aid must not stop a run, so a failed map write is reported and ignored (a
/// machine-code file, written when the variable names a directory, is skipped silently).
fn write_perf_map<'a>(
    dest: &std::ffi::OsStr,
    kernels: impl Iterator<Item = (*const u8, &'a String, usize)>,
) {
    use std::io::Write;
    let path = std::env::temp_dir().join(format!("perf-{}.map", std::process::id()));
    let mut text = String::new();
    let dump = Some(std::path::Path::new(dest)).filter(|d| d.is_dir());
    for (p, name, size) in kernels {
        text.push_str(&format!("{:x} {size:x} {name}\n", p as usize));
        if let Some(dir) = &dump {
            // SAFETY: `p` points at `size` bytes of finalised machine code, alive while the
            // module is (it is not freed before `finish` returns).
            let code = unsafe { std::slice::from_raw_parts(p, size) };
            let file = dir.join(format!("{name}-{:x}.bin", p as usize));
            let _ = std::fs::write(file, code);
        }
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    if let Err(e) = written {
        eprintln!("warning: cannot write the perf map {}: {e}", path.display());
    }
}

/// A buffer handed to a [`Bound`] kernel.
pub enum Buf<'a> {
    F32(&'a [f32]),
    F32Mut(&'a mut [f32]),
    U32Mut(&'a mut [u32]),
    U32(&'a [u32]),
}

impl Buf<'_> {
    fn len(&self) -> usize {
        match self {
            Buf::F32(s) => s.len(),
            Buf::F32Mut(s) => s.len(),
            Buf::U32Mut(s) => s.len(),
            Buf::U32(s) => s.len(),
        }
    }

    fn ptr(&mut self) -> *mut u8 {
        match self {
            Buf::F32(s) => s.as_ptr().cast_mut().cast(),
            Buf::F32Mut(s) => s.as_mut_ptr().cast(),
            Buf::U32Mut(s) => s.as_mut_ptr().cast(),
            Buf::U32(s) => s.as_ptr().cast_mut().cast(),
        }
    }
}

/// A kernel bound to the buffer sizes and item count of the spec it was compiled for, so it
/// can be run safely: [`Bound::run`] checks every buffer against those sizes.
#[derive(Clone, Debug)]
pub struct Bound {
    kernel: Kernel,
    lens: Vec<usize>,
    items: usize,
    /// `(buffer index, f32s)`: a scratch buffer each call gets to itself (see
    /// [`Bound::with_call_scratch`]).
    call_scratch: Option<(usize, usize)>,
}

/// Buffer pointers shared by the threads running disjoint item ranges.
struct SharedPtrs(Vec<*mut u8>);

// SAFETY: the pointers come from borrows that outlive the parallel call (`Bound::run` holds
// them), and the kernels' contract is that disjoint item ranges write disjoint memory, so
// sharing the addresses across threads creates no data race.
unsafe impl Sync for SharedPtrs {}

impl Kernel {
    /// Binds this kernel to the buffer lengths (in elements, in call order) and item count its
    /// emitter documents for the spec it was compiled from. The caller vouches for these
    /// figures; [`Bound::run`] then refuses any smaller buffer.
    pub fn bind(self, lens: Vec<usize>, items: usize) -> Bound {
        Bound {
            kernel: self,
            lens,
            items,
            call_scratch: None,
        }
    }
}

thread_local! {
    /// The per-call scratch of [`Bound::with_call_scratch`] kernels, reused by every call
    /// on this thread.
    static CALL_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Bound {
    pub fn name(&self) -> &str {
        self.kernel.name()
    }

    /// The number of work items a run covers.
    pub fn items(&self) -> usize {
        self.items
    }

    /// This kernel with buffer `index` a scratch of `len` f32s that each call (each thread's
    /// range of items) gets to itself, from a buffer the thread keeps between runs: the
    /// caller passes an empty buffer there. For working sets too large for the stack (a
    /// Winograd convolution's transformed tiles).
    pub fn with_call_scratch(mut self, index: usize, len: usize) -> Bound {
        self.call_scratch = Some((index, len));
        self
    }

    /// Calls the kernel on items `[start, end)` with `ptrs`, giving it its call scratch.
    ///
    /// # Safety
    /// As [`Kernel::call`].
    unsafe fn call(&self, ptrs: &[*mut u8], start: usize, end: usize) {
        let Some((index, len)) = self.call_scratch else {
            // SAFETY: the caller upholds `Kernel::call`'s contract.
            return unsafe { self.kernel.call(ptrs, start, end) };
        };
        CALL_SCRATCH.with_borrow_mut(|scratch| {
            if scratch.len() < len {
                scratch.resize(len, 0.0);
            }
            let mut ptrs = ptrs.to_vec();
            ptrs[index] = scratch.as_mut_ptr().cast();
            // SAFETY: as above; the scratch is this thread's, borrowed for the whole call.
            unsafe { self.kernel.call(&ptrs, start, end) }
        });
    }

    /// Runs every work item, split into contiguous ranges across rayon's threads.
    ///
    /// # Panics
    /// When the number of buffers or any buffer's length differs from the bound figures (a
    /// bug in the caller, never user input).
    pub fn run(&self, bufs: &mut [Buf<'_>]) {
        self.run_split(bufs, rayon::current_num_threads().max(1));
    }

    /// Runs every work item on the calling thread: for kernels too small to repay waking
    /// the other threads (a parameter update of a few thousand elements).
    ///
    /// # Panics
    /// As [`Bound::run`].
    pub fn run_here(&self, bufs: &mut [Buf<'_>]) {
        self.run_split(bufs, 1);
    }

    fn run_split(&self, bufs: &mut [Buf<'_>], threads: usize) {
        assert_eq!(
            bufs.len(),
            self.lens.len(),
            "kernel `{}`: wrong number of buffers",
            self.name()
        );
        for (i, (b, &want)) in bufs.iter().zip(&self.lens).enumerate() {
            assert!(
                b.len() >= want,
                "kernel `{}`: buffer {i} has {} elements, needs {want}",
                self.name(),
                b.len()
            );
        }
        let ptrs = SharedPtrs(bufs.iter_mut().map(Buf::ptr).collect());
        if threads == 1 {
            // SAFETY: as in the parallel case below, with one range on this thread.
            unsafe { self.call(&ptrs.0, 0, self.items) };
            return;
        }
        let chunk = self.items.div_ceil(threads).max(1);
        let ranges: Vec<(usize, usize)> = (0..self.items)
            .step_by(chunk)
            .map(|s| (s, (s + chunk).min(self.items)))
            .collect();
        let ptrs = &ptrs;
        rayon::scope(|scope| {
            for &(start, end) in &ranges {
                scope.spawn(move |_| {
                    // SAFETY: every buffer is at least as large as the spec the kernel was
                    // compiled for requires (checked above against the bound lengths), the
                    // borrows behind the pointers live until `run` returns, and disjoint item
                    // ranges write disjoint outputs.
                    unsafe { self.call(&ptrs.0, start, end) }
                });
            }
        });
    }
}
