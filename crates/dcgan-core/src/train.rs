//! One training iteration of the seed: `dSteps` discriminator updates, then one generator update.
//!
//! In bf16 precision the step is PyTorch's autocast recipe: every forward runs inside a
//! `torch.autocast(device, dtype=torch.bfloat16)` region (convolutions in bfloat16 on bfloat16
//! copies of the fp32 weights), D's output is its logits, the losses are BCE-with-logits computed
//! in float32, and backward and the Adam update run outside the region on the fp32 weights.
use crate::config::{AdversarialLoss, GeneratorLoss, Precision};
use crate::distributed::Ballot;
use crate::error::{Error, Result};
use crate::ffi::AutocastGuard;
use crate::gan::Gan;
use crate::layers::{Lowering, NormMode};
use crate::model::Network;
use tch::{Kind, Reduction, Tensor};

/// How a step of a group ended (see `Gan::train_step_in_group`).
#[derive(Clone, Debug, PartialEq)]
pub enum GroupStep {
    /// The step was taken.
    Done(StepStats),
    /// A rank asked to stop: no rank took the step.
    Stopped,
    /// These ranks failed outside a step: no rank took the step.
    PeerFailed(Vec<i64>),
    /// These other ranks refused their shard of the batch: no rank took the step.
    Refused(Vec<i64>),
}

/// A deferred step's numbers on their way to the host: a host tensor that a non-blocking copy
/// fills, and (on a GPU) the event after that copy.
pub struct PendingStats {
    step: i64,
    host: Tensor,
    ready: Option<crate::ffi::DeviceEvent>,
}

impl PendingStats {
    /// (step, numbers), once the copy that brings them is done. A sixth number is the largest
    /// absolute value of a real batch that was on a GPU (`RangeCheck::WithNumbers`).
    fn read(self) -> Result<(i64, StepStats)> {
        if let Some(event) = &self.ready {
            event.wait()?;
        }
        let values: Vec<f64> = Vec::<f64>::try_from(self.host.f_to_kind(Kind::Double)?)?;
        if let Some(&worst) = values.get(5) {
            if worst.is_nan() || worst > MAX_ABS_REAL {
                let found = if worst.is_nan() { "it holds NaN".to_string() } else { format!("its largest absolute value is {worst}") };
                return Err(Error::Input(format!(
                    "the real batch of step {}: {found}; images must be finite and scaled to [−1, 1] \
                     (values beyond ±{MAX_ABS_REAL} are refused), as (x / 255 − 0.5) / 0.5 does for bytes. The batch was on \
                     the GPU, so with deferred numbers it was checked with them, after the step was taken: resume from \
                     the last checkpoint",
                    self.step
                )));
            }
        }
        Ok((self.step, stats_from(&values)))
    }
}

/// When a real batch's range is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RangeCheck {
    /// Before the step: every value finite, the largest within range (both read on the host).
    Now,
    /// On the batch's device, read with the step's numbers (a NaN or an infinity fails it too).
    WithNumbers,
}

impl RangeCheck {
    /// For a step whose numbers are deferred: a batch already on a GPU is range-checked there and
    /// judged with the step's numbers, since reading the check now would wait for the GPU's
    /// queue, the wait deferring avoids.
    pub(crate) fn deferred_for(real: &Tensor) -> RangeCheck {
        if real.device().is_cuda() { RangeCheck::WithNumbers } else { RangeCheck::Now }
    }
}

/// A GPU batch for a step judged with its numbers (`Gan::judged_with_numbers`).
pub(crate) struct JudgedBatch {
    /// The batch with NaN and ±inf as 0: what the step trains on.
    pub(crate) cleaned: Tensor,
    /// Its largest absolute value (NaN if it holds one), a one-element tensor on the device.
    worst: Tensor,
}

impl JudgedBatch {
    /// The step's numbers with the sixth that `PendingStats::read` judges.
    pub(crate) fn append_to(&self, values: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_cat(&[values, &self.worst], 0)?)
    }
}

/// The five numbers of a step from their host tensor.
pub(crate) fn stats_of(host: &Tensor) -> Result<StepStats> {
    Ok(stats_from(&Vec::<f64>::try_from(host.f_to_kind(Kind::Double)?)?))
}

/// The five numbers of a step from the first five values.
fn stats_from(v: &[f64]) -> StepStats {
    StepStats { loss_d: v[0], loss_g: v[1], d_real: v[2], d_fake: v[3], d_fake_after: v[4] }
}

/// What one step measured, as the seed logs it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Discriminator loss (real + fake) / 2 of the last discriminator update.
    pub loss_d: f64,
    /// Generator loss.
    pub loss_g: f64,
    /// Mean D(x) on the real batch.
    pub d_real: f64,
    /// Mean D(G(z)) before the discriminator update.
    pub d_fake: f64,
    /// Mean D(G(z)) in the generator update, after the discriminator update.
    pub d_fake_after: f64,
}

fn bce(p: &Tensor, target: f64) -> Result<Tensor> {
    let t = p.f_full_like(target)?;
    if p.device().is_cuda() {
        return nan_safe_bce(p, &t);
    }
    // On the CPU a NaN probability is an error, which `checked_step` explains.
    Ok(p.f_binary_cross_entropy::<Tensor>(&t, None, Reduction::Mean)?)
}

/// BCE that a NaN probability (weights that diverged) turns into a NaN loss, where CUDA's BCE
/// kernel would fail a device-side assert, which ends the process's CUDA context: the
/// probabilities go in with NaN as ½, and 0·Σp adds exactly 0 (and a zero gradient) to the loss
/// while every p is finite, NaN once one is not. Otherwise bit for bit `binary_cross_entropy`.
pub(crate) fn nan_safe_bce(p: &Tensor, target: &Tensor) -> Result<Tensor> {
    let cleaned = p.f_nan_to_num(Some(0.5), Some(1.0), Some(0.0))?;
    let loss = cleaned.f_binary_cross_entropy::<Tensor>(target, None, Reduction::Mean)?;
    Ok(loss.f_add(&p.f_sum(Kind::Float)?.f_mul_scalar(0.0)?)?)
}

/// The same loss as `bce(sigmoid(logits))`, computed in float32 from bfloat16 logits without
/// going through a probability that rounds to 0 or 1.
fn bce_with_logits(logits: &Tensor, target: f64) -> Result<Tensor> {
    let x = logits.f_to_kind(Kind::Float)?;
    let t = x.f_full_like(target)?;
    Ok(x.f_binary_cross_entropy_with_logits::<Tensor>(&t, None, None, Reduction::Mean)?)
}

/// What D outputs in a precision: probabilities (fp32, the seed) or logits (bf16).
fn loss_of(precision: Precision, out: &Tensor, target: f64) -> Result<Tensor> {
    match precision {
        Precision::Fp32 => bce(out, target),
        Precision::Bf16 => bce_with_logits(out, target),
    }
}

/// Mean D(x) from D's output in a precision.
fn mean_probability(precision: Precision, out: &Tensor) -> Result<Tensor> {
    let p = match precision {
        Precision::Fp32 => out.shallow_clone(),
        Precision::Bf16 => out.f_to_kind(Kind::Float)?.f_sigmoid()?,
    };
    Ok(p.f_mean(None)?.f_detach()?)
}

/// How fp32 on the CPU lowers its convolutions: `DCGAN_DENSE_MATMUL=0` keeps every layer on
/// libtorch's convolutions, `DCGAN_CONV_MATMUL=0` the strided ones (for measuring what the
/// matrix products give).
fn fp32_cpu_lowering() -> Lowering {
    static LOWERING: std::sync::OnceLock<Lowering> = std::sync::OnceLock::new();
    *LOWERING.get_or_init(|| match (crate::env_switch("DCGAN_DENSE_MATMUL", true), crate::env_switch("DCGAN_CONV_MATMUL", true)) {
        (false, _) => Lowering::Convolution,
        (true, false) => Lowering::DenseMatmul,
        (true, true) => Lowering::Fp32Matmul,
    })
}

/// Gradients of `loss` with respect to `params` only: nothing else is computed or accumulated,
/// so the generator update spends no work on the discriminator's weight gradients.
fn gradients(loss: &Tensor, params: &[Tensor]) -> Result<Vec<Tensor>> {
    Ok(Tensor::f_run_backward(&[loss], params, false, false)?)
}

/// How far outside [−1, 1] a real image's values may lie: room for rounding and mild
/// augmentation. Beyond it the data was not scaled as the generator's tanh output is (bytes in
/// 0…255, or a mean/std normalisation), which poisons BatchNorm's statistics silently.
pub const MAX_ABS_REAL: f64 = 1.5;

/// Every value of a real batch finite and within ±MAX_ABS_REAL. One read of the largest absolute
/// value decides (a NaN makes it NaN, which fails the comparison): on a GPU every read waits for
/// the queue. Only a batch that fails is read again, to say what is wrong with it.
fn check_real_values(real: &Tensor) -> Result<()> {
    let worst = real.f_abs()?.f_max()?.f_double_value(&[])?;
    if worst <= MAX_ABS_REAL {
        return Ok(());
    }
    crate::input::ensure_finite(real, "the real batch")?;
    out_of_range_error(real)
}

/// The error for a finite batch with a value beyond ±MAX_ABS_REAL, naming the largest.
fn out_of_range_error(real: &Tensor) -> Result<()> {
    let flat = real.f_flatten(0, -1)?;
    let i = flat.f_abs()?.f_argmax(0, false)?.f_int64_value(&[])?;
    let v = flat.f_double_value(&[i])?;
    Err(Error::Input(format!(
        "the real batch: value {i} is {v}; images must be scaled to [−1, 1] (values beyond ±{MAX_ABS_REAL} are refused), \
         as (x / 255 − 0.5) / 0.5 does for bytes"
    )))
}

impl Gan {
    /// Checks a real batch for training: images of the model's shape, n a multiple of dSteps,
    /// values in range unless `range` says the range is checked later (see `train_step_deferred`).
    fn check_real(&self, real: &Tensor, range: RangeCheck) -> Result<()> {
        // Before anything changes (and before a group's vote): a loaded model was not asked
        // whether this device trains in its precision when it was built (`Gan::load`).
        self.train.validate_for(self.device)?;
        self.check_image_shape(real, "the real batch")?;
        let k = self.train.d_steps;
        let n = real.size()[0];
        self.check_work(n, true, "a training step")?;
        if range == RangeCheck::Now {
            check_real_values(real)?;
        }
        if n % k != 0 {
            return Err(Error::Input(format!(
                "the real batch has {n} images, which dSteps = {k} cannot split evenly: give a multiple of {k}"
            )));
        }
        Ok(())
    }

    /// One iteration on `real` (n×C×S×S in [−1, 1]). With dSteps = k the batch is split in k
    /// parts, one per discriminator update. `noise` (n×zDim[×1×1]) replaces the drawn noise.
    /// In a group, a rank that failed outside a step or asked to stop ends it with an error here;
    /// `train_step_in_group` reports them instead. After `use_cuda_graph` the step runs through
    /// the graph whenever the batch has its shape (`graph_takes`).
    pub fn train_step(&mut self, real: &Tensor, noise: Option<&Tensor>) -> Result<StepStats> {
        if self.graph_takes(real) {
            return self.train_step_graphed(real, noise);
        }
        match self.train_step_in_group(real, noise, false)? {
            GroupStep::Done(stats) => Ok(stats),
            GroupStep::Stopped => Err(Error::Distributed("another rank asked to stop: this step was not taken".into())),
            GroupStep::PeerFailed(ranks) => Err(crate::distributed::failed_error(&ranks)),
            GroupStep::Refused(ranks) => Err(crate::distributed::refused_error(&ranks)),
        }
    }

    /// `train_step` as one rank of a group (plain `train_step` without one): the ranks first
    /// vote (see distributed::step_vote), each with its `stop` and whether its shard passed the
    /// checks; the step is taken only when no rank stops, failed or refused its shard.
    pub fn train_step_in_group(&mut self, real: &Tensor, noise: Option<&Tensor>, stop: bool) -> Result<GroupStep> {
        let checked = self.check_inputs(real, noise, RangeCheck::Now);
        let verdict = crate::distributed::step_vote(self, Ballot { stop, failed: false, refused: checked.is_err() })?;
        let noise = checked?;
        if !verdict.refused.is_empty() {
            return Ok(GroupStep::Refused(verdict.refused));
        }
        if !verdict.failed.is_empty() {
            return Ok(GroupStep::PeerFailed(verdict.failed));
        }
        if verdict.stop {
            return Ok(GroupStep::Stopped);
        }
        let values = self.checked_step(real, noise)?;
        Ok(GroupStep::Done(stats_of(&values.f_to_device(tch::Device::Cpu)?)?))
    }

    /// `step`, with a diverged model's failure said as such.
    pub(crate) fn checked_step(&mut self, real: &Tensor, noise: Option<Tensor>) -> Result<Tensor> {
        self.step(real, noise).or_else(|e| match e {
            // An exchange of the synchronised BatchNorm's backward (inside autograd) failed.
            Error::Torch(m) if m.to_string().contains(crate::distributed::SYNC_BN_EXCHANGE_FAILED) => Err(crate::distributed::sync_bn_error(&m.to_string())),
            // NaN weights make D's output NaN, which BCE rejects: say what happened instead.
            Error::Torch(_) if !self.all_finite()? => Err(Error::NonFinite(format!(
                "the weights hold NaN or Infinity at step {}: training diverged (try a lower lr)",
                self.steps_done + 1
            ))),
            e => Err(e),
        })
    }

    /// `train_step` without waiting for its numbers: on a GPU the step's work is enqueued, its
    /// numbers start on their way to the host (a non-blocking copy into pinned memory and an
    /// event after it), and the call returns with the numbers of the previous deferred step,
    /// waiting for that step only — so the host never waits for the step it just enqueued, and
    /// the caller's own work overlaps the GPU's. Returns (step number, its numbers), None after
    /// the first deferred step; `take_pending_stats` gives the last one. On the CPU the step is
    /// done when the call returns and only the reporting is deferred. One process only (a
    /// group's step votes first; see `train_step_in_group`). Through the CUDA graph as
    /// `train_step` is.
    pub fn train_step_deferred(&mut self, real: &Tensor, noise: Option<&Tensor>) -> Result<Option<(i64, StepStats)>> {
        if crate::distributed::rank_and_world().is_some_and(|(_, world)| world > 1) {
            return Err(Error::Input("deferred step numbers are for one process: in a data-parallel group each step waits for its vote".into()));
        }
        if self.graph_takes(real) {
            return self.train_step_graphed_deferred(real, noise);
        }
        let range = RangeCheck::deferred_for(real);
        let noise = self.check_inputs(real, noise, range)?;
        let judged = self.judged_with_numbers(real, range)?;
        let values = self.checked_step(judged.as_ref().map_or(real, |j| &j.cleaned), noise)?;
        let values = match judged {
            Some(j) => j.append_to(&values)?,
            None => values,
        };
        self.defer_numbers(&values)
    }

    /// For `RangeCheck::WithNumbers`, the batch the step takes and its largest absolute value,
    /// both left on the device. Unchecked, NaN would reach CUDA's BCE kernel, whose device-side
    /// assert ends the context before the numbers could say what happened: the step sees NaN and
    /// ±inf as 0, and the numbers refuse the batch.
    pub(crate) fn judged_with_numbers(&self, real: &Tensor, range: RangeCheck) -> Result<Option<JudgedBatch>> {
        if range == RangeCheck::Now {
            return Ok(None);
        }
        let cleaned = real.f_nan_to_num(Some(0.0), Some(0.0), Some(0.0))?;
        let worst = real.f_abs()?.f_max()?.f_to_kind(Kind::Float)?.f_reshape([1])?.f_to_device(self.device)?;
        Ok(Some(JudgedBatch { cleaned, worst }))
    }

    /// Starts the numbers of the step just enqueued (`values`, on the device) on their way to the
    /// host and returns the previous deferred step's, waiting for that step only.
    pub(crate) fn defer_numbers(&mut self, values: &Tensor) -> Result<Option<(i64, StepStats)>> {
        // A non-blocking copy from a GPU lands in pinned host memory (libtorch's rule for `to`).
        let host = values.f_to_device_(tch::Device::Cpu, Kind::Float, true, false)?;
        let ready = crate::ffi::DeviceEvent::record(self.device)?;
        // Stored first: if waiting for the previous step fails, this step's numbers stay pending.
        let previous = self.pending_stats.replace(PendingStats { step: self.steps_done, host, ready });
        previous.map(PendingStats::read).transpose()
    }

    /// The numbers of the last deferred step (waiting for that step to finish), once.
    pub fn take_pending_stats(&mut self) -> Result<Option<(i64, StepStats)>> {
        self.pending_stats.take().map(PendingStats::read).transpose()
    }

    /// A step's real batch and the noise given for it (one latent vector per image), checked.
    pub(crate) fn check_inputs(&self, real: &Tensor, noise: Option<&Tensor>, range: RangeCheck) -> Result<Option<Tensor>> {
        self.check_real(real, range)?;
        let Some(z) = noise else { return Ok(None) };
        let z = self.check_latent(z, "the noise batch")?;
        let n = real.size()[0];
        if z.size()[0] != n {
            return Err(Error::Input(format!("the noise batch has {} vectors but the real batch {n} images: give one per image", z.size()[0])));
        }
        Ok(Some(z))
    }

    /// The step's work; returns its five numbers (loss D, loss G, D(x), D(G(z)) before and after
    /// the D update) as one tensor on the device, without waiting for them.
    pub(crate) fn step(&mut self, real: &Tensor, noise: Option<Tensor>) -> Result<Tensor> {
        let real = self.prepare_images(real)?;
        let n = real.size()[0];
        let noise = match noise {
            Some(z) => z,
            None => self.step_noise(n)?,
        };
        let k = self.train.d_steps;
        let reals = real.f_chunk(k, 0)?;
        let noises = noise.f_chunk(k, 0)?;
        let mut fake = None;
        let mut d_stats = None;
        for (i, (real_i, z_i)) in reals.iter().zip(&noises).enumerate() {
            let last = i as i64 == k - 1;
            // Only the last fake batch feeds the generator update, so only it keeps a graph.
            let fake_i = {
                let _autocast = self.autocast_region()?;
                let how = self.lowering();
                if last {
                    self.generator.forward_with(z_i, NormMode::Train, how)?
                } else {
                    tch::no_grad(|| self.generator.forward_with(z_i, NormMode::Train, how))?
                }
            };
            d_stats = Some(self.discriminator_update(real_i, &fake_i.f_detach()?)?);
            fake = Some(fake_i);
        }
        let fake = fake.expect("dSteps >= 1");
        let values = self.generator_update(&fake, d_stats.expect("dSteps >= 1"))?;
        self.update_ema()?;
        self.steps_done += 1;
        Ok(values)
    }

    /// The noise of a step of `n` images (this rank's share in a group), from the model's generator.
    pub(crate) fn step_noise(&mut self, n: i64) -> Result<Tensor> {
        let mut rng = self.rng.clone();
        let z = crate::distributed::local_latent(self, &mut rng, n)?;
        self.rng = rng;
        Ok(z)
    }

    /// In bf16, an autocast region that lasts as long as the returned guard; nothing in fp32.
    /// Backward must run after the guard is dropped, as PyTorch runs it outside `autocast`.
    fn autocast_region(&self) -> Result<Option<AutocastGuard>> {
        match self.train.precision {
            Precision::Fp32 => Ok(None),
            Precision::Bf16 => Ok(Some(AutocastGuard::bf16(self.device)?)),
        }
    }

    /// D's training-mode output for the loss: probabilities in fp32, logits under autocast in bf16.
    fn discriminator_output(&mut self, x: &Tensor) -> Result<Tensor> {
        match self.train.precision {
            Precision::Fp32 => self.discriminator.forward_with(x, NormMode::Train, self.lowering()),
            Precision::Bf16 => self.discriminator.logits(x, NormMode::Train, self.lowering()),
        }
    }

    /// How the convolutions run: as PyTorch runs them on GPUs (cuDNN), with matrix products on
    /// the CPU where oneDNN is slow: the dense first and last layers in both precisions, the
    /// weight gradients of wide layers, and in fp32 the image-side layers' scatters (see
    /// `Lowering`).
    fn lowering(&self) -> Lowering {
        match (self.train.precision, self.device) {
            (Precision::Bf16, tch::Device::Cpu) => Lowering::Bf16Matmul,
            (Precision::Fp32, tch::Device::Cpu) => fp32_cpu_lowering(),
            _ => Lowering::Convolution,
        }
    }

    /// Maximise log D(x) + log(1 − D(G(z))); returns (loss, mean D(x), mean D(G(z))) as tensors.
    fn discriminator_update(&mut self, real: &Tensor, fake: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        if self.train.needs_logits() || self.train.real_label != 1.0 || self.train.augment != crate::config::Augment::None {
            return self.stabilised_discriminator_update(real, fake);
        }
        let precision = self.train.precision;
        let (loss, d_real, d_fake) = {
            let _autocast = self.autocast_region()?;
            let d_real = self.discriminator_output(real)?;
            let loss_real = loss_of(precision, &d_real, 1.0)?;
            let d_fake = self.discriminator_output(fake)?;
            let loss_fake = loss_of(precision, &d_fake, 0.0)?;
            (loss_real.f_add(&loss_fake)?.f_div_scalar(2.0)?, d_real, d_fake)
        };
        let grads = gradients(&loss, &self.opt_d.params)?;
        self.opt_d.update(&grads)?;
        Ok((loss.f_detach()?, mean_probability(precision, &d_real)?, mean_probability(precision, &d_fake)?))
    }

    /// The discriminator update with the stabilisers: DiffAugment on both batches (real first),
    /// the real target `realLabel`, the hinge loss, the R1 penalty on real images. The returned
    /// loss is the adversarial loss alone (without the penalty), as the seed logs it.
    fn stabilised_discriminator_update(&mut self, real: &Tensor, fake: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let t = self.train.clone();
        let real = self.augment(real)?;
        let fake = self.augment(fake)?;
        let r1 = t.r1_gamma > 0.0 && self.opt_d.step % t.r1_every == 0;
        let real = if r1 { real.f_detach()?.f_set_requires_grad(true)? } else { real };
        let (loss, out_real, out_fake) = {
            let _autocast = self.autocast_region()?;
            let out_real = self.discriminator_raw(&real)?;
            let out_fake = self.discriminator_raw(&fake)?;
            let loss = match t.loss {
                AdversarialLoss::Bce => {
                    let loss_real = self.loss_on_raw(&out_real, t.real_label)?;
                    let loss_fake = self.loss_on_raw(&out_fake, 0.0)?;
                    loss_real.f_add(&loss_fake)?.f_div_scalar(2.0)?
                }
                AdversarialLoss::Hinge => {
                    let x_real = out_real.f_to_kind(Kind::Float)?;
                    let x_fake = out_fake.f_to_kind(Kind::Float)?;
                    let loss_real = x_real.f_neg()?.f_add_scalar(1.0)?.f_relu()?.f_mean(None)?;
                    let loss_fake = x_fake.f_add_scalar(1.0)?.f_relu()?.f_mean(None)?;
                    loss_real.f_add(&loss_fake)?
                }
            };
            (loss, out_real, out_fake)
        };
        let total = if r1 { loss.f_add(&self.r1_penalty(&out_real, &real)?)? } else { loss.shallow_clone() };
        let grads = gradients(&total, &self.opt_d.params)?;
        self.opt_d.update(&grads)?;
        Ok((loss.f_detach()?, self.raw_probability(&out_real)?, self.raw_probability(&out_fake)?))
    }

    /// γ/2 · mean over images of ‖∇ₓ D(x)‖² (D's logits), times `r1Every` (the lazy variant's
    /// scaling), with the graph kept so that the penalty's own gradient reaches D's weights.
    fn r1_penalty(&self, logits: &Tensor, real: &Tensor) -> Result<Tensor> {
        let sum = logits.f_sum(Kind::Float)?;
        let grad = Tensor::f_run_backward(&[&sum], &[real], true, true)?.remove(0);
        let per_image = grad.f_square()?.f_sum_dim_intlist([1i64, 2, 3].as_slice(), false, None::<Kind>)?;
        let scale = self.train.r1_gamma / 2.0 * self.train.r1_every as f64;
        Ok(per_image.f_mean(None)?.f_mul_scalar(scale)?)
    }

    /// D's raw output for the stabilised losses: logits when the loss or the penalty needs them
    /// (and always in bf16), probabilities otherwise.
    fn discriminator_raw(&mut self, x: &Tensor) -> Result<Tensor> {
        if self.raw_is_logits() {
            let how = self.lowering();
            self.discriminator.logits(x, NormMode::Train, how)
        } else {
            self.discriminator.forward_with(x, NormMode::Train, self.lowering())
        }
    }

    fn raw_is_logits(&self) -> bool {
        self.train.needs_logits() || self.train.precision == Precision::Bf16
    }

    /// BCE of D's raw output against `target`: on probabilities as the seed (through sigmoid when
    /// the raw output is fp32 logits), with logits in bf16.
    fn loss_on_raw(&self, raw: &Tensor, target: f64) -> Result<Tensor> {
        match (self.train.precision, self.raw_is_logits()) {
            (Precision::Bf16, _) => bce_with_logits(raw, target),
            (Precision::Fp32, true) => bce(&raw.f_sigmoid()?, target),
            (Precision::Fp32, false) => bce(raw, target),
        }
    }

    /// Mean D(x) as a probability from a raw output.
    fn raw_probability(&self, raw: &Tensor) -> Result<Tensor> {
        let p = if self.raw_is_logits() { raw.f_to_kind(Kind::Float)?.f_sigmoid()? } else { raw.shallow_clone() };
        Ok(p.f_mean(None)?.f_detach()?)
    }

    /// DiffAugment with the next draws (fed ones first); `x` unchanged when augmentation is off.
    fn augment(&mut self, x: &Tensor) -> Result<Tensor> {
        let policy = self.train.augment;
        if policy == crate::config::Augment::None {
            return Ok(x.shallow_clone());
        }
        let draws = match self.fed_augment_draws.pop_front() {
            Some(d) => crate::device::upload(&d, self.device)?,
            None => {
                let mut rng = self.rng.clone();
                let d = crate::augment::draw(&mut rng, policy, &x.size(), self.device)?;
                self.rng = rng;
                d
            }
        };
        crate::augment::apply(x, policy, &draws)
    }

    /// One step of the moving average: ema ← ema + (1 − d)(g − ema) for every parameter and
    /// BatchNorm statistic, d = min(emaDecay, (1 + t) / (10 + t)) at G update t (1, 2, …).
    fn update_ema(&mut self) -> Result<()> {
        let Some(ema) = &mut self.ema else { return Ok(()) };
        let t = self.opt_g.step as f64;
        let decay = self.train.ema_decay.min((1.0 + t) / (10.0 + t));
        let live = self.generator.state();
        tch::no_grad(|| -> Result<()> {
            for ((name, mut average, _), (_, value, _)) in ema.state().into_iter().zip(live) {
                if !name.ends_with("num_batches_tracked") {
                    let _ = average.f_lerp_(&value, 1.0 - decay)?;
                }
            }
            Ok(())
        })?;
        for (a, b) in ema.blocks_mut().into_iter().zip(self.generator.blocks_mut()) {
            a.bn.num_batches_tracked = b.bn.num_batches_tracked;
        }
        Ok(())
    }

    /// The generator update on `fake` (with its graph); returns (loss, mean D(G(z))) as tensors.
    /// The generator update; returns the step's five numbers (loss D, loss G, D(x), D(G(z)) before
    /// and after the D update) as one tensor, so that one host read brings them all. In a group
    /// they are the ranks' means (the global batch's), averaged with G's gradients at no extra cost.
    fn generator_update(&mut self, fake: &Tensor, d_stats: (Tensor, Tensor, Tensor)) -> Result<Tensor> {
        let stabilised = self.train.needs_logits() || self.train.augment != crate::config::Augment::None;
        let precision = self.train.precision;
        let fake = if stabilised { self.augment(fake)? } else { fake.shallow_clone() };
        let (loss, out) = {
            let _autocast = self.autocast_region()?;
            let out = if stabilised { self.discriminator_raw(&fake)? } else { self.discriminator_output(&fake)? };
            let loss = match (self.train.loss, self.train.generator_loss) {
                (AdversarialLoss::Hinge, _) => out.f_to_kind(Kind::Float)?.f_mean(None)?.f_neg()?,
                (_, GeneratorLoss::NonSaturating) if stabilised => self.loss_on_raw(&out, 1.0)?,
                (_, GeneratorLoss::Minimax) if stabilised => self.loss_on_raw(&out, 0.0)?.f_neg()?,
                (_, GeneratorLoss::NonSaturating) => loss_of(precision, &out, 1.0)?,
                (_, GeneratorLoss::Minimax) => loss_of(precision, &out, 0.0)?.f_neg()?,
            };
            (loss, out)
        };
        let grads = gradients(&loss, &self.opt_g.params)?;
        let mean = if stabilised { self.raw_probability(&out)? } else { mean_probability(precision, &out)? };
        let (loss_d, d_real, d_fake) = d_stats;
        let values = Tensor::f_stack(&[loss_d, loss.f_detach()?, d_real, d_fake, mean].map(|t| t.f_to_kind(Kind::Float)).into_iter().collect::<std::result::Result<Vec<_>, _>>()?, 0)?;
        let shared = self.opt_g.update_sharing(&grads, Some(&values))?;
        Ok(shared.unwrap_or(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(values: &[f32]) -> PendingStats {
        PendingStats { step: 7, host: Tensor::from_slice(values), ready: None }
    }

    /// What a deferred step on a GPU batch trains on and judges (the judging itself is
    /// `deferred_numbers_refuse_a_device_batch_out_of_range`): NaN and ±inf as 0, the largest
    /// absolute value (NaN when there is one) as the numbers' sixth value; nothing for `Now`.
    #[test]
    fn a_batch_judged_with_the_numbers_is_cleaned_and_its_worst_value_appended() {
        let model = crate::config::ModelConfig { image_size: 16, features_g: 4, features_d: 4, ..Default::default() };
        let gan = Gan::new(model, crate::TrainOptions::default(), tch::Device::Cpu, Some(1)).unwrap();
        let values = Tensor::from_slice(&[0.5f32, 1.0, 0.6, 0.4, 0.25]);
        let judged = |v: &[f32]| gan.judged_with_numbers(&Tensor::from_slice(v), RangeCheck::WithNumbers).unwrap().unwrap();
        let j = judged(&[0.5, -255.0, 1.0]);
        assert_eq!(Vec::<f32>::try_from(&j.cleaned).unwrap(), [0.5, -255.0, 1.0]);
        assert_eq!(Vec::<f32>::try_from(j.append_to(&values).unwrap()).unwrap(), [0.5, 1.0, 0.6, 0.4, 0.25, 255.0]);
        let j = judged(&[0.5, f32::NAN, f32::NEG_INFINITY, -1.0]);
        assert_eq!(Vec::<f32>::try_from(&j.cleaned).unwrap(), [0.5, 0.0, 0.0, -1.0]);
        assert!(Vec::<f32>::try_from(j.append_to(&values).unwrap()).unwrap()[5].is_nan());
        assert_eq!(Vec::<f32>::try_from(judged(&[0.5, f32::INFINITY]).append_to(&values).unwrap()).unwrap()[5], f32::INFINITY);
        assert!(gan.judged_with_numbers(&Tensor::from_slice(&[f32::NAN]), RangeCheck::Now).unwrap().is_none());
        assert_eq!(RangeCheck::deferred_for(&values), RangeCheck::Now);
    }

    /// The BCE used on CUDA against libtorch's: the same loss and gradient bits for probabilities
    /// in [0, 1] (0 and 1 included: the log clamp), and a NaN loss, not an error, for a NaN.
    #[test]
    fn nan_safe_bce_is_bce_until_a_probability_is_nan() {
        tch::manual_seed(3);
        let p0 = Tensor::rand([64, 1], (Kind::Float, tch::Device::Cpu));
        let _ = p0.narrow(0, 0, 2).fill_(0.0);
        let _ = p0.narrow(0, 2, 2).fill_(1.0);
        for target in [0.0, 0.9, 1.0] {
            let t = p0.full_like(target);
            let grad_of = |f: &dyn Fn(&Tensor) -> Tensor| {
                let p = p0.copy().set_requires_grad(true);
                let loss = f(&p);
                let g = Tensor::run_backward(&[&loss], &[&p], false, false).remove(0);
                (loss.double_value(&[]), g)
            };
            let (want, want_g) = grad_of(&|p| p.binary_cross_entropy::<Tensor>(&t, None, Reduction::Mean));
            let (got, got_g) = grad_of(&|p| nan_safe_bce(p, &t).unwrap());
            assert_eq!(got.to_bits(), want.to_bits(), "target {target}: {got} vs {want}");
            assert!(got_g.equal(&want_g), "target {target}: the gradients differ");
        }
        let p = p0.copy();
        let _ = p.narrow(0, 5, 1).fill_(f64::NAN);
        let t = p.full_like(1.0);
        assert!(p.f_binary_cross_entropy::<Tensor>(&t, None, Reduction::Mean).is_err(), "libtorch's CPU BCE accepts NaN now: the guard may be unneeded");
        assert!(nan_safe_bce(&p, &t).unwrap().double_value(&[]).is_nan());
    }

    #[test]
    fn deferred_numbers_refuse_a_device_batch_out_of_range() {
        let error = pending(&[0.5, 1.0, 0.6, 0.4, 0.25, 255.0]).read().unwrap_err().to_string();
        assert!(error.contains("the real batch of step 7: its largest absolute value is 255;"), "{error}");
        assert!(error.contains("after the step was taken"), "{error}");
        let error = pending(&[0.5, 1.0, 0.6, 0.4, 0.25, f32::NAN]).read().unwrap_err().to_string();
        assert!(error.contains("the real batch of step 7: it holds NaN;"), "{error}");
        let error = pending(&[0.5, 1.0, 0.6, 0.4, 0.25, f32::INFINITY]).read().unwrap_err().to_string();
        assert!(error.contains("its largest absolute value is inf;"), "{error}");
        let (step, stats) = pending(&[0.5, 1.0, 0.6, 0.4, 0.25, MAX_ABS_REAL as f32]).read().unwrap();
        assert_eq!((step, stats.loss_d, stats.loss_g, stats.d_fake_after), (7, 0.5, 1.0, 0.25));
        let (_, stats) = pending(&[0.5, 1.0, 0.6, 0.4, 0.25]).read().unwrap();
        assert_eq!(stats.d_real as f32, 0.6);
    }
}
