//! Several SAEs in one process from one read of the data. Members that draw the same stream (same
//! store, seed, batch and shuffle buffer) share it: each batch is drawn once from the shuffle
//! buffer and fed to every member of the stream, one after another (each step already uses every
//! core). A member sees exactly the batches, in the same order, that it would see trained alone,
//! so it ends bit-identical to a run of its own; a resumed member rejoins the stream at its own
//! checkpoint's step. Streams take turns one batch at a time, the one furthest behind in its source
//! first ([`BatchSource::progress`]): streams of different stores alternate, and the streams of one live
//! forward pass (one per hook) keep in step, so it holds only the rows not yet taken.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sae_store::ShuffleOptions;

use crate::config::Resolved;
use crate::error::{Result, TrainError};
use crate::member::{finished, Member};
use crate::run::{RunSpec, RunSummary};
use crate::source::{BatchSource, DataInfo, Sources, StoreSources};
use crate::trainer::StepMetrics;
use crate::transcoder::resolve_for;

/// How [`train_many`] treats its members.
#[derive(Clone, Copy, Debug, Default)]
pub struct MultiOptions {
    /// With `resume`, a member whose folder already holds its finished SAE is skipped instead of
    /// refused (a resumed sweep whose first members had finished).
    pub skip_finished: bool,
}

/// A member as the run starts.
#[derive(Clone, Debug)]
pub struct MemberStart {
    /// Its output folder.
    pub out: PathBuf,
    /// Its store.
    pub store: PathBuf,
    /// Steps it trains in all.
    pub total: u64,
    /// Steps done before this invocation (resume).
    pub start: u64,
    /// Its sizes.
    pub res: Resolved,
    /// It had finished before and is skipped.
    pub skipped: bool,
}

/// Progress callbacks of a run of several SAEs.
pub trait MultiObserver {
    /// Called once before the first step.
    fn begin(&mut self, _members: &[MemberStart]) {}
    /// Called after every step of member `member` with its throughput since the (re)start.
    fn step(&mut self, _member: usize, _m: &StepMetrics, _rows_per_s: f64) {}
    /// Called with occasional notes (checkpoint written, SAE saved).
    fn note(&mut self, _msg: &str) {}
}

/// One shared stream of batches.
#[derive(Clone, Debug)]
pub struct StreamSummary {
    /// The store it reads (for a live stream, the data its specs name).
    pub store: PathBuf,
    /// The members it fed (indices into the specs).
    pub members: Vec<usize>,
    /// Batches drawn from its shuffle buffer in this invocation.
    pub batches_read: u64,
    /// Steps its members ran on them, all together.
    pub sae_steps: u64,
}

/// What a run of several SAEs reports.
#[derive(Clone, Debug)]
pub struct MultiSummary {
    /// One per spec, in order (a skipped member ran 0 steps).
    pub members: Vec<RunSummary>,
    /// One per shared stream.
    pub streams: Vec<StreamSummary>,
    /// Wall-clock seconds of the step loop.
    pub seconds: f64,
}

struct Stream<'a> {
    store: PathBuf,
    info: DataInfo,
    /// None once every member of the stream is done (a live source then stops holding rows for it).
    data: Option<Box<dyn BatchSource + 'a>>,
    members: Vec<usize>,
    /// Batches drawn so far (the stream position, counting those skipped on resume).
    pos: u64,
    batch: Vec<f32>,
    scratch: Vec<f32>,
    read: u64,
    steps: u64,
}

/// Adds the member's folder to an error of a run of several SAEs.
fn in_member(multi: bool, out: &Path) -> impl FnOnce(TrainError) -> TrainError + '_ {
    move |err| match multi {
        true => TrainError::InMember {
            out: out.to_path_buf(),
            err: Box::new(err),
        },
        false => err,
    }
}

/// Which stream a spec draws: two specs with the same key see the same batches.
fn stream_key(spec: &RunSpec, d: usize) -> StreamKey {
    let canon = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    let cfg = &spec.cfg;
    let data = (canon(&spec.store), spec.target.as_ref().map(canon));
    (data, cfg.seed, cfg.batch, cfg.shuffle_buffer_rows(d))
}

/// (input store, target store), seed, batch, buffer rows.
type StreamKey = ((PathBuf, Option<PathBuf>), u64, usize, usize);

/// The members opened, what each starts from, and their streams.
struct Opened<'a> {
    /// None for a skipped member.
    members: Vec<Option<Member>>,
    starts: Vec<MemberStart>,
    streams: Vec<Stream<'a>>,
}

/// A new stream of `spec`'s batches.
fn new_stream<'a>(
    spec: &RunSpec,
    info: &DataInfo,
    buffer_rows: usize,
    sources: &mut dyn Sources<'a>,
) -> Result<Stream<'a>> {
    let cfg = &spec.cfg;
    let options = ShuffleOptions {
        batch: cfg.batch,
        buffer_rows,
        seed: cfg.seed,
    };
    Ok(Stream {
        store: spec.store.clone(),
        info: info.clone(),
        data: Some(sources.open(spec, options)?),
        members: Vec::new(),
        pos: u64::MAX,
        batch: vec![0f32; cfg.batch * info.d],
        scratch: Vec::new(),
        read: 0,
        steps: 0,
    })
}

/// Opens every member (locks, checks, initialises or resumes) and groups them into streams.
fn open_all<'a>(
    specs: &[RunSpec],
    sources: &mut dyn Sources<'a>,
    opts: &MultiOptions,
) -> Result<Opened<'a>> {
    let multi = specs.len() > 1;
    let mut infos: HashMap<(PathBuf, Option<PathBuf>), DataInfo> = HashMap::new();
    let mut keys: Vec<StreamKey> = Vec::new();
    let mut o = Opened {
        members: Vec::with_capacity(specs.len()),
        starts: Vec::with_capacity(specs.len()),
        streams: Vec::new(),
    };
    for (i, spec) in specs.iter().enumerate() {
        if specs[..i].iter().any(|s| s.out == spec.out) {
            let msg = format!("two SAEs would be written to {}", spec.out.display());
            return Err(TrainError::Invalid(msg));
        }
        let ctx = || in_member(multi, &spec.out);
        let data = (spec.store.clone(), spec.target.clone());
        if !infos.contains_key(&data) {
            let info = sources.info(spec).map_err(ctx())?;
            infos.insert(data.clone(), info);
        }
        let info = &infos[&data];
        let start = MemberStart {
            out: spec.out.clone(),
            store: spec.store.clone(),
            total: spec.cfg.steps,
            start: spec.cfg.steps,
            res: resolve_for(&spec.cfg, info).map_err(ctx())?,
            skipped: true,
        };
        if opts.skip_finished && spec.resume && finished(&spec.out) {
            o.members.push(None);
            o.starts.push(start);
            continue;
        }
        let key = stream_key(spec, info.d);
        let s = match keys.iter().position(|k| *k == key) {
            Some(s) => s,
            None => {
                let st = new_stream(spec, info, key.3, sources).map_err(ctx())?;
                o.streams.push(st);
                keys.push(key);
                o.streams.len() - 1
            }
        };
        o.streams[s].members.push(i);
        o.members.push(None);
        o.starts.push(start);
    }
    // Every stream is open before any member draws its initialisation sample, so a live source
    // knows all its consumers before its first forward pass.
    for st in &mut o.streams {
        for &i in &st.members {
            let spec = &specs[i];
            let data = st.data.as_deref_mut().expect("a new stream has its source");
            let member = Member::open(spec, &st.info, data).map_err(in_member(multi, &spec.out))?;
            (o.starts[i].start, o.starts[i].skipped) = (member.position(), false);
            st.pos = st.pos.min(member.position());
            o.members[i] = Some(member);
        }
        if st.members.len() >= 2 {
            st.scratch = st.batch.clone();
        }
    }
    for s in &mut o.streams {
        if let Some(d) = s.data.as_deref_mut() {
            d.skip_batches(s.pos)?;
        }
    }
    Ok(o)
}

/// Where the loop stands: the members, their summaries, the clock, the observer.
struct Loop<'a> {
    members: Vec<Option<Member>>,
    summaries: Vec<Option<RunSummary>>,
    multi: bool,
    t0: Instant,
    obs: &'a mut dyn MultiObserver,
}

impl Loop<'_> {
    /// Draws one batch of `s` and steps every member at its position; false (and the source let go)
    /// when all are done.
    fn advance(&mut self, s: &mut Stream<'_>) -> Result<bool> {
        let members = &self.members;
        let live = |i: &usize| members[*i].as_ref().is_some_and(|m| !m.done());
        let Some(data) = s.data.as_deref_mut().filter(|_| s.members.iter().any(live)) else {
            s.data = None;
            return Ok(false);
        };
        data.next_batch_into(&mut s.batch)?;
        s.read += 1;
        let at = |i: &usize| members[*i].as_ref().is_some_and(|m| m.position() == s.pos);
        let now: Vec<usize> = s.members.iter().copied().filter(live).filter(at).collect();
        for (j, &i) in now.iter().enumerate() {
            // The last member steps on the drawn batch itself, the others on a copy (a step
            // scales its batch in place).
            let buf = if j + 1 == now.len() {
                &mut s.batch
            } else {
                s.scratch.copy_from_slice(&s.batch);
                &mut s.scratch
            };
            self.step_member(i, buf, data, &s.info)?;
            s.steps += 1;
        }
        s.pos += 1;
        Ok(true)
    }

    /// One step of member `i`; saves it when it is done.
    fn step_member(
        &mut self,
        i: usize,
        buf: &mut [f32],
        source: &mut dyn BatchSource,
        info: &DataInfo,
    ) -> Result<()> {
        let m = self.members[i].as_mut().expect("a live member");
        let out = m.spec.out.clone();
        let ctx = || in_member(self.multi, &out);
        let st = m
            .step(buf, self.t0.elapsed().as_secs_f64(), source)
            .map_err(ctx())?;
        self.obs.step(i, &st.metrics, st.rows_per_s);
        if st.checkpoint {
            let at = st.metrics.step;
            let who = match self.multi {
                true => format!("{}: ", out.display()),
                false => String::new(),
            };
            self.obs.note(&format!("{who}checkpoint at step {at}"));
        }
        if m.done() {
            let m = self.members[i].take().expect("a live member");
            self.summaries[i] = Some(summary_of(&m, self.t0.elapsed().as_secs_f64()));
            m.finish(info).map_err(ctx())?;
            self.obs.note(&format!("saved SAE to {}", out.display()));
        }
        Ok(())
    }
}

/// The stream to step next: the one with a source furthest behind (the first of equals).
fn next_stream(streams: &[Stream<'_>]) -> Option<usize> {
    streams
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.data.as_ref().map(|d| (d.progress(), i)))
        .min()
        .map(|(_, i)| i)
}

/// Trains (or resumes) every run of `specs` in one process, each stream of batches read once.
pub fn train_many(
    specs: &[RunSpec],
    opts: &MultiOptions,
    obs: &mut dyn MultiObserver,
) -> Result<MultiSummary> {
    train_from(specs, &mut StoreSources::default(), opts, obs)
}

/// [`train_many`] with the batches of every distinct stream from `sources` (e.g. a live stream).
pub fn train_from<'a>(
    specs: &[RunSpec],
    sources: &mut dyn Sources<'a>,
    opts: &MultiOptions,
    obs: &mut dyn MultiObserver,
) -> Result<MultiSummary> {
    let Opened {
        members,
        starts,
        mut streams,
    } = open_all(specs, sources, opts)?;
    let mut summaries: Vec<Option<RunSummary>> = vec![None; specs.len()];
    for (i, st) in starts.iter().enumerate().filter(|(_, st)| st.skipped) {
        summaries[i] = Some(RunSummary::skipped(st.res));
        obs.note(&format!("{} already finished: skipped", st.out.display()));
    }
    obs.begin(&starts);
    let mut lp = Loop {
        members,
        summaries,
        multi: specs.len() > 1,
        t0: Instant::now(),
        obs,
    };
    while let Some(i) = next_stream(&streams) {
        lp.advance(&mut streams[i])?;
    }
    let seconds = lp.t0.elapsed().as_secs_f64();
    Ok(MultiSummary {
        members: lp
            .summaries
            .into_iter()
            .map(|s| s.expect("every member ran"))
            .collect(),
        streams: streams
            .into_iter()
            .map(|s| StreamSummary {
                store: s.store,
                members: s.members,
                batches_read: s.read,
                sae_steps: s.steps,
            })
            .collect(),
        seconds,
    })
}

fn summary_of(m: &Member, seconds: f64) -> RunSummary {
    let steps_run = m.trainer.state.step - m.start_step;
    RunSummary {
        last: m.last.clone(),
        steps_run,
        seconds,
        rows_per_s: (steps_run * m.spec.cfg.batch as u64) as f64 / seconds.max(1e-9),
        res: m.res,
    }
}
