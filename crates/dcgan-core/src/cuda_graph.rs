//! CUDA graphs: the training step captured once and replayed, so that the host enqueues one graph
//! launch per step instead of some hundreds of kernels (see `Gan::train_step_graphed`).
//!
//! `at::cuda::CUDAGraph` lives in libtorch_cuda.so, which the addon does not link, so the capture
//! calls are in a small library of their own (csrc/cuda_graph.cpp), built against a CUDA libtorch
//! by benchmark/gpu/build-cuda-graph.sh and loaded here from the path in `DCGAN_CUDA_GRAPH_LIB`.
use crate::config::TrainOptions;
use crate::error::{Error, Result};
use crate::gan::Gan;
use crate::layers::copy_of;
use crate::model::Network;
use crate::train::{stats_of, RangeCheck, StepStats};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;
use tch::{Device, Tensor};

/// The environment variable that names libdcgan_cuda_graph.so.
pub const LIB_ENV: &str = "DCGAN_CUDA_GRAPH_LIB";

type NewFn = unsafe extern "C" fn(c_int, *mut *mut c_void) -> *const c_char;
type GraphFn = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type FreeFn = unsafe extern "C" fn(*mut c_void);

struct Library {
    new: NewFn,
    enter: GraphFn,
    exit: GraphFn,
    capture_begin: GraphFn,
    capture_end: GraphFn,
    replay: GraphFn,
    free: FreeFn,
}

static LIBRARY: OnceLock<std::result::Result<Library, String>> = OnceLock::new();

fn library() -> Result<&'static Library> {
    LIBRARY.get_or_init(load).as_ref().map_err(|why| Error::Input(format!("CUDA graphs cannot be used: {why}")))
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a C string valid until the next dl* call on this thread.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() { "unknown error".into() } else { CStr::from_ptr(e).to_string_lossy().into_owned() }
    }
}

fn load() -> std::result::Result<Library, String> {
    crate::cuda_lib::load()?;
    let path = std::env::var(LIB_ENV).map_err(|_| {
        format!("they need libdcgan_cuda_graph.so, built against this torch by benchmark/gpu/build-cuda-graph.sh; set {LIB_ENV} to its path")
    })?;
    let c_path = CString::new(path.clone()).map_err(|_| format!("{LIB_ENV} holds a NUL byte"))?;
    // SAFETY: dlopen with a valid C string; the handle stays open for the life of the process.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("{path} could not be loaded ({}); rebuild it against this torch", dl_error()));
    }
    let symbol = |name: &str| -> std::result::Result<*mut c_void, String> {
        let c_name = CString::new(name).expect("a symbol name without NUL");
        // SAFETY: dlsym on an open handle with a valid C string.
        let f = unsafe { libc::dlsym(handle, c_name.as_ptr()) };
        if f.is_null() { Err(format!("{path} lacks {name}: rebuild it from this version's csrc/cuda_graph.cpp")) } else { Ok(f) }
    };
    // SAFETY: each symbol is the extern "C" function of csrc/cuda_graph.cpp with this signature.
    unsafe {
        Ok(Library {
            new: std::mem::transmute::<*mut c_void, NewFn>(symbol("dcgan_graph_new")?),
            enter: std::mem::transmute::<*mut c_void, GraphFn>(symbol("dcgan_graph_enter")?),
            exit: std::mem::transmute::<*mut c_void, GraphFn>(symbol("dcgan_graph_exit")?),
            capture_begin: std::mem::transmute::<*mut c_void, GraphFn>(symbol("dcgan_graph_capture_begin")?),
            capture_end: std::mem::transmute::<*mut c_void, GraphFn>(symbol("dcgan_graph_capture_end")?),
            replay: std::mem::transmute::<*mut c_void, GraphFn>(symbol("dcgan_graph_replay")?),
            free: std::mem::transmute::<*mut c_void, FreeFn>(symbol("dcgan_graph_free")?),
        })
    }
}

fn check(err: *const c_char, what: &str) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: the library returns a NUL-terminated string valid until its next call on this thread.
    let message = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    Err(Error::Torch(tch::TchError::Torch(format!("CUDA graph {what} failed: {message}"))))
}

/// One captured step's graph and the side stream it is captured and warmed up on.
pub struct Graph {
    handle: *mut c_void,
    library: &'static Library,
}

// SAFETY: the graph is used from one thread at a time (the model's), and CUDA allows that.
unsafe impl Send for Graph {}

impl Graph {
    pub fn new(device_index: usize) -> Result<Graph> {
        let library = library()?;
        let mut handle = std::ptr::null_mut();
        check(unsafe { (library.new)(device_index as c_int, &mut handle) }, "creation")?;
        Ok(Graph { handle, library })
    }

    /// Runs `f` with the graph's side stream current (warm-up steps and the capture run there).
    pub fn on_side_stream<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.between((self.library.enter, "stream switch"), (self.library.exit, "stream switch back"), f)
    }

    /// Captures the work `f` enqueues (on the side stream, inside `on_side_stream`). On an error
    /// the capture is ended and the error of `f` returned.
    pub fn capture<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        self.between((self.library.capture_begin, "capture"), (self.library.capture_end, "capture end"), f)
    }

    /// `f` between two calls of the library: the closing one runs even when `f` fails, whose
    /// error then comes first.
    fn between<T>(&self, (open, opening): (GraphFn, &str), (close, closing): (GraphFn, &str), f: impl FnOnce() -> Result<T>) -> Result<T> {
        check(unsafe { open(self.handle) }, opening)?;
        let out = f();
        let closed = check(unsafe { close(self.handle) }, closing);
        let out = out?;
        closed.map(|_| out)
    }

    /// Launches the captured work on the current stream.
    pub fn replay(&self) -> Result<()> {
        check(unsafe { (self.library.replay)(self.handle) }, "replay")
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        unsafe { (self.library.free)(self.handle) }
    }
}

/// A model's training step as a CUDA graph: the warm-up steps still to run eagerly, then the
/// captured step with the tensors it reads (batch, noise) and writes (the step's numbers).
pub struct GraphedStep {
    graph: Graph,
    warmup_left: usize,
    captured: Option<Captured>,
    /// The batch shape of the first step given to the graph: warm-up, capture and replays all run
    /// on it (cuDNN tunes for a shape in the warm-up, and a capture must not tune).
    shape: Option<Vec<i64>>,
    /// Steps taken by replaying the graph (the capture's step included).
    replays: u64,
}

impl GraphedStep {
    /// Whether the graph takes a step on `real`: a batch of the shape of its first step.
    fn takes(&self, real: &Tensor) -> bool {
        self.shape.as_ref().is_none_or(|s| *s == real.size())
    }
}

/// How a graphed step failed: in its capture (graphs go off) or otherwise (they stay on).
enum Failure {
    Capture(Error),
    Step(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Step(e)
    }
}

struct Captured {
    real: Tensor,
    noise: Tensor,
    values: Tensor,
    /// What one step adds to the host's counters (`Gan::counters`), which a replay does not run.
    counters: Vec<i64>,
}

/// The training option a CUDA graph cannot run, and why, if any: each changes its arithmetic from
/// step to step on the host, which a replay would freeze.
pub(crate) fn option_without_graphs(t: &TrainOptions) -> Option<String> {
    if t.ema_decay > 0.0 {
        return Some(format!("with emaDecay {} (the average's decay changes at every step)", t.ema_decay));
    }
    if t.augment != crate::config::Augment::None {
        return Some("with augment (its draws are made on the host at every step)".into());
    }
    if t.r1_gamma > 0.0 {
        return Some(format!("with r1Gamma {} (the lazy penalty runs on some steps only)", t.r1_gamma));
    }
    None
}

impl Gan {
    /// From now on `train_step_graphed` runs the training step as a CUDA graph: `warmup` steps
    /// eagerly on the graph's stream (cuDNN's autotuning and lazy allocations must not happen in
    /// a capture; PyTorch's recipe uses 3), then one step captured and replayed, then only replays.
    /// Adam's step count moves to the GPU for it. Refused, each by name, on the CPU, in a
    /// data-parallel group, and with options whose arithmetic changes from step to step on the
    /// host (the moving average's decay, DiffAugment's draws, the lazy R1 penalty).
    pub fn use_cuda_graph(&mut self, warmup: usize) -> Result<()> {
        if warmup < 1 {
            return Err(Error::Input("use_cuda_graph needs at least 1 warm-up step (cuDNN's and cuBLAS's first use must not happen in a capture); PyTorch's recipe uses 3".into()));
        }
        let Device::Cuda(index) = self.device else {
            return Err(Error::Input("CUDA graphs need a model on a CUDA device; this one is on the CPU".into()));
        };
        let refuse = |why: &str| Err(Error::Input(format!("CUDA graphs cannot run {why}; train without them (train_step)")));
        if crate::distributed::rank_and_world().is_some_and(|(_, world)| world > 1) {
            return refuse("a data-parallel step (each step waits for its vote)");
        }
        if let Some(why) = option_without_graphs(&self.train) {
            return refuse(&why);
        }
        let graph = Graph::new(index)?;
        self.opt_g.count_on_device()?;
        self.opt_d.count_on_device()?;
        self.cuda_graph = Some(GraphedStep { graph, warmup_left: warmup, captured: None, shape: None, replays: 0 });
        Ok(())
    }

    /// Steps this model took by replaying its CUDA graph; None while graphs are off.
    pub fn cuda_graph_replays(&self) -> Option<u64> {
        self.cuda_graph.as_ref().map(|g| g.replays)
    }

    /// Whether `train_step` and `train_step_deferred` hand a step on `real` to the graph: graphs
    /// are on and `real` has the shape of the graph's first step (any shape before that). Any
    /// other batch, such as an epoch's shorter last one, is trained eagerly on the same weights.
    pub(crate) fn graph_takes(&self, real: &Tensor) -> bool {
        let in_group = crate::distributed::rank_and_world().is_some_and(|(_, world)| world > 1);
        !in_group && self.cuda_graph.as_ref().is_some_and(|g| g.takes(real))
    }

    /// Graphs off (Adam's count back on the host), as for a model that joins a data-parallel
    /// group, whose steps vote and exchange gradients outside any graph.
    pub fn stop_cuda_graph(&mut self) {
        if self.cuda_graph.take().is_some() {
            self.opt_g.count_on_host();
            self.opt_d.count_on_host();
        }
    }

    /// `train_step` through the CUDA graph of `use_cuda_graph`; waits for the step's numbers.
    /// Every replay takes a batch of the captured step's size. A capture that fails turns graphs
    /// off for this model (the step is not taken: counters, random draws and Adam as before it).
    pub fn train_step_graphed(&mut self, real: &Tensor, noise: Option<&Tensor>) -> Result<StepStats> {
        let values = self.graphed_values(real, noise, RangeCheck::Now)?;
        stats_of(&values.f_to_device(Device::Cpu)?)
    }

    /// `train_step_graphed` without waiting for the step's numbers, as `train_step_deferred`
    /// returns them: (step, numbers) of the previous deferred step, None after the first;
    /// `take_pending_stats` gives the last. With a batch from the host the host then never waits
    /// for the GPU: one copy of batch and noise and one graph launch per step. A batch already on
    /// the GPU is judged with the numbers, as in `train_step_deferred`, so that neither waits.
    pub fn train_step_graphed_deferred(&mut self, real: &Tensor, noise: Option<&Tensor>) -> Result<Option<(i64, StepStats)>> {
        let values = self.graphed_values(real, noise, RangeCheck::deferred_for(real))?;
        self.defer_numbers(&values)
    }

    /// The graphed step, its numbers left on the device (the captured output, which the next
    /// replay overwrites: a copy of it enqueued before that replay is ordered before it).
    fn graphed_values(&mut self, real: &Tensor, noise: Option<&Tensor>, range: RangeCheck) -> Result<Tensor> {
        let Some(mut graphed) = self.cuda_graph.take() else {
            return Err(Error::Input("train_step_graphed needs use_cuda_graph first".into()));
        };
        let out = self.graphed_step(&mut graphed, real, noise, range);
        match out {
            Err(Failure::Capture(e)) => {
                // The allocator may still hold the failed capture's pool and a filter that points
                // into the graph object: leaving the object alive is the safe way out.
                std::mem::forget(graphed.graph);
                self.opt_g.count_on_host();
                self.opt_d.count_on_host();
                Err(Error::Torch(tch::TchError::Torch(format!(
                    "the CUDA graph capture of the step failed, so CUDA graphs are off for this model (train_step works without them): {e}"
                ))))
            }
            Err(Failure::Step(e)) => {
                self.cuda_graph = Some(graphed);
                Err(e)
            }
            Ok(values) => {
                self.cuda_graph = Some(graphed);
                Ok(values)
            }
        }
    }

    fn graphed_step(&mut self, graphed: &mut GraphedStep, real: &Tensor, noise: Option<&Tensor>, range: RangeCheck) -> std::result::Result<Tensor, Failure> {
        let noise = self.check_inputs(real, noise, range)?;
        let judged = self.judged_with_numbers(real, range)?;
        let values = self.graph_run(graphed, judged.as_ref().map_or(real, |j| &j.cleaned), noise)?;
        match judged {
            Some(j) => Ok(j.append_to(&values)?),
            None => Ok(values),
        }
    }

    /// The step on a checked batch: eager on the graph's stream while warming up, then captured
    /// once, then replayed.
    fn graph_run(&mut self, graphed: &mut GraphedStep, real: &Tensor, noise: Option<Tensor>) -> std::result::Result<Tensor, Failure> {
        match &graphed.shape {
            Some(shape) if *shape != real.size() => {
                return Err(Failure::Step(Error::Input(format!(
                    "the real batch has shape {:?} but this model's CUDA graph runs on {shape:?}, the shape of its first \
                     step: give batches of that shape (train_step trains others eagerly)",
                    real.size()
                ))));
            }
            Some(_) => {}
            None => graphed.shape = Some(real.size()),
        }
        let rng = self.rng.clone();
        let noise = match noise {
            Some(z) => z,
            None => self.step_noise(real.size()[0])?,
        };
        let real = self.prepare_images(real)?;
        let graph = &graphed.graph;
        if graphed.warmup_left > 0 {
            graphed.warmup_left -= 1;
            return Ok(graph.on_side_stream(|| self.checked_step(&real, Some(noise)))?);
        }
        let Some(c) = &graphed.captured else {
            let captured = match self.capture(graph, &real, &noise) {
                Ok(captured) => captured,
                Err(e) => {
                    self.rng = rng; // the step was not taken: its noise is drawn again
                    return Err(Failure::Capture(e));
                }
            };
            // The capture ran the host's side of the step (its counters) but no GPU work: the
            // replay is this step's work. Kept first: a replay that fails leaves the capture for
            // the next step and the model as before this one.
            let values = captured.values.shallow_clone();
            let undo: Vec<i64> = captured.counters.iter().map(|d| -d).collect();
            graphed.captured = Some(captured);
            if let Err(e) = graph.replay() {
                self.advance_counters(&undo);
                self.rng = rng;
                return Err(Failure::Step(e));
            }
            graphed.replays += 1;
            return Ok(values);
        };
        c.real.shallow_clone().f_copy_(&real).map_err(Error::from)?;
        c.noise.shallow_clone().f_copy_(&noise).map_err(Error::from)?;
        graph.replay()?;
        graphed.replays += 1;
        self.advance_counters(&c.counters);
        Ok(c.values.shallow_clone())
    }

    /// Captures one step on copies of `real` and `noise` (what later replays copy their inputs
    /// into). On an error the host's counters are put back as they were before.
    fn capture(&mut self, graph: &Graph, real: &Tensor, noise: &Tensor) -> Result<Captured> {
        let (real, noise) = (copy_of(real)?, copy_of(noise)?);
        let before = self.counters();
        // `step`, not `checked_step`: explaining an error reads the weights, which a capture forbids.
        let values = graph.on_side_stream(|| graph.capture(|| self.step(&real, Some(noise.shallow_clone()))));
        let added: Vec<i64> = self.counters().iter().zip(&before).map(|(a, b)| a - b).collect();
        match values {
            Ok(values) => Ok(Captured { real, noise, values, counters: added }),
            Err(e) => {
                self.advance_counters(&added.iter().map(|d| -d).collect::<Vec<_>>());
                Err(e)
            }
        }
    }

    /// The host's counters a step advances: steps done, Adam's steps, BatchNorm's batches.
    fn counters(&mut self) -> Vec<i64> {
        let mut out = vec![self.steps_done, self.opt_g.step, self.opt_d.step];
        out.extend(self.generator.blocks_mut().iter().map(|b| b.bn.num_batches_tracked));
        out.extend(self.discriminator.blocks_mut().iter().map(|b| b.bn.num_batches_tracked));
        out
    }

    fn advance_counters(&mut self, delta: &[i64]) {
        self.steps_done += delta[0];
        self.opt_g.step += delta[1];
        self.opt_d.step += delta[2];
        let blocks = self.generator.blocks_mut().into_iter().chain(self.discriminator.blocks_mut());
        for (block, d) in blocks.zip(&delta[3..]) {
            block.bn.num_batches_tracked += d;
        }
    }
}
