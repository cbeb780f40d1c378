//! The input pipeline: samples decoded, resized, augmented and rescaled on worker threads,
//! delivered in batches, in order, with bounded prefetch.
//!
//! Owns [`Loader`] (one sample: read → augment → rescale) and [`Feed`] (one pass over a list
//! of sample indices in batches). A feed keeps at most `2 · threads` batches in flight: it hands
//! batch numbers to the workers, collects what they return, and gives batches out in order, so
//! the consumer never waits for a batch the workers had time to make, and memory stays bounded
//! however slow the consumer is.
//!
//! Results do not depend on the thread count: sample `i` of epoch `e` is augmented with the
//! generator [`SampleRng::for_sample`]`(seed, e, i)`, whichever thread makes it. With no threads
//! the feed makes each batch on the consumer's thread when asked (right for in-memory data that
//! is not augmented, where a copy is all there is to do).
//!
//! A file that decoded when its folder was scanned but fails now (changed on disk) gives a
//! zero sample and a message in [`Batch::problems`], for the consumer to report.
//!
//! Must not depend on `ir`, `runtime` or `tui`.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::Samples;
use super::augment::{Augment, SampleRng};

/// Makes samples: reads one, augments it when asked, rescales it.
#[derive(Debug)]
pub struct Loader {
    pub samples: Arc<Samples>,
    pub augment: Option<Augment>,
    pub seed: u64,
}

/// Consecutive samples, NHWC, ready for the model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// `labels.len() · h · w · c` values.
    pub x: Vec<f32>,
    pub labels: Vec<u32>,
    /// Samples that could not be made (zeros were given instead), one message each.
    pub problems: Vec<String>,
}

impl Loader {
    pub fn new(samples: Arc<Samples>, augment: Option<Augment>, seed: u64) -> Loader {
        Loader {
            samples,
            augment,
            seed,
        }
    }

    /// Worker threads worth using: none when making a sample is a copy (in memory, not
    /// converted, not augmented), otherwise one per core.
    pub fn suggested_threads(&self) -> usize {
        if !self.samples.is_costly() && self.augment.is_none() {
            0
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Writes sample `i` into `out`: augmented (when this loader augments and `epoch` is
    /// given) with the generator of `(seed, epoch, i)`, then scaled ([`Samples::scale`]).
    ///
    /// # Errors
    /// The reason the sample could not be read; `out` is then zero.
    ///
    /// # Shapes
    /// `out.len() == samples.image_len()`.
    pub fn sample_into(
        &self,
        i: usize,
        epoch: Option<usize>,
        out: &mut [f32],
    ) -> Result<(), String> {
        let img = match self.samples.raw(i) {
            Ok(img) => img,
            Err(why) => {
                out.fill(0.0);
                return Err(why);
            }
        };
        match (&self.augment, epoch) {
            (Some(aug), Some(epoch)) => {
                let mut rng = SampleRng::for_sample(self.seed, epoch as u64, i as u64);
                let t = aug.draw(&mut rng, img.height, img.width);
                aug.apply(&t, &img, out);
            }
            _ => out.copy_from_slice(&img.data),
        }
        self.samples.scale(out);
        Ok(())
    }

    /// The samples `indices`, in that order.
    pub fn batch(&self, indices: &[usize], epoch: Option<usize>) -> Batch {
        let n = self.samples.image_len();
        let mut batch = Batch {
            x: vec![0.0; indices.len() * n],
            labels: indices.iter().map(|&i| self.samples.labels[i]).collect(),
            problems: Vec::new(),
        };
        for (j, &i) in indices.iter().enumerate() {
            if let Err(why) = self.sample_into(i, epoch, &mut batch.x[j * n..(j + 1) * n]) {
                batch.problems.push(why);
            }
        }
        batch
    }
}

/// What a feed's workers share.
struct Plan {
    loader: Arc<Loader>,
    order: Vec<usize>,
    batch_size: usize,
    epoch: Option<usize>,
}

impl Plan {
    fn make(&self, b: usize) -> Batch {
        let end = ((b + 1) * self.batch_size).min(self.order.len());
        self.loader
            .batch(&self.order[b * self.batch_size..end], self.epoch)
    }
}

/// One pass over `order` in batches of `batch_size`, made ahead on worker threads.
pub struct Feed {
    plan: Arc<Plan>,
    batches: usize,
    /// The next batch to give out and the next to hand to a worker.
    next_out: usize,
    next_job: usize,
    in_flight: usize,
    jobs: Option<Sender<usize>>,
    results: Option<Receiver<(usize, Batch)>>,
    ready: BTreeMap<usize, Batch>,
    workers: Vec<JoinHandle<()>>,
}

impl Feed {
    /// Starts a pass over `order` from batch `first_batch` (to resume mid-epoch), augmenting
    /// as epoch `epoch` when given. `threads == 0` makes batches on the caller's thread.
    ///
    /// # Panics
    /// If `batch_size` is 0, or a worker thread cannot be started.
    pub fn new(
        loader: Arc<Loader>,
        order: Vec<usize>,
        batch_size: usize,
        first_batch: usize,
        epoch: Option<usize>,
        threads: usize,
    ) -> Feed {
        assert!(batch_size > 0, "Feed: batch size 0");
        let batches = order.len().div_ceil(batch_size);
        let plan = Arc::new(Plan {
            loader,
            order,
            batch_size,
            epoch,
        });
        let mut feed = Feed {
            plan,
            batches,
            next_out: first_batch,
            next_job: first_batch,
            in_flight: 0,
            jobs: None,
            results: None,
            ready: BTreeMap::new(),
            workers: Vec::new(),
        };
        if threads > 0 && first_batch < batches {
            let (job_tx, job_rx) = channel::<usize>();
            let (result_tx, result_rx) = channel();
            let job_rx = Arc::new(Mutex::new(job_rx));
            for k in 0..threads {
                let (jobs, results, plan) = (job_rx.clone(), result_tx.clone(), feed.plan.clone());
                let worker = std::thread::Builder::new()
                    .name(format!("input-{k}"))
                    .spawn(move || {
                        loop {
                            let job = match jobs.lock() {
                                Ok(rx) => rx.recv(),
                                Err(_) => return,
                            };
                            let Ok(b) = job else { return };
                            if results.send((b, plan.make(b))).is_err() {
                                return;
                            }
                        }
                    })
                    .unwrap_or_else(|e| panic!("cannot start an input pipeline thread: {e}"));
                feed.workers.push(worker);
            }
            feed.jobs = Some(job_tx);
            feed.results = Some(result_rx);
            feed.fill(2 * threads);
        }
        feed
    }

    /// The number of batches in the whole pass.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// Hands out jobs until `limit` are in flight.
    fn fill(&mut self, limit: usize) {
        let Some(jobs) = &self.jobs else { return };
        while self.in_flight < limit && self.next_job < self.batches {
            if jobs.send(self.next_job).is_err() {
                return;
            }
            self.next_job += 1;
            self.in_flight += 1;
        }
    }
}

impl Iterator for Feed {
    type Item = Batch;

    /// The next batch, waiting for it if the workers have not made it yet.
    fn next(&mut self) -> Option<Batch> {
        if self.next_out >= self.batches {
            return None;
        }
        let b = self.next_out;
        self.next_out += 1;
        let Some(results) = &self.results else {
            return Some(self.plan.make(b));
        };
        let batch = loop {
            if let Some(batch) = self.ready.remove(&b) {
                break batch;
            }
            match results.recv() {
                Ok((got, batch)) => {
                    self.in_flight -= 1;
                    self.ready.insert(got, batch);
                }
                // Every worker is gone (one panicked): make it here rather than fail.
                Err(_) => break self.plan.make(b),
            }
        };
        let limit = 2 * self.workers.len();
        self.fill(limit);
        Some(batch)
    }
}

impl Drop for Feed {
    /// Closes the job queue and waits for the workers (at most the batch each is making).
    fn drop(&mut self) {
        self.jobs = None;
        self.results = None;
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;

    fn counting(n: usize) -> Arc<Samples> {
        let data = Dataset {
            shape: [4, 5, 1],
            images: (0..n * 20).map(|v| (v % 256) as f32).collect(),
            labels: (0..n).map(|i| (i % 3) as u32).collect(),
            classes: 3,
        };
        Arc::new(Samples::memory(data, 0.5))
    }

    fn augmented(samples: Arc<Samples>) -> Arc<Loader> {
        let aug = Augment {
            rotation_range: 30.0,
            width_shift_range: 0.2,
            zoom_range: Augment::zoom(0.2),
            horizontal_flip: true,
            ..Augment::default()
        };
        Arc::new(Loader::new(samples, Some(aug), 11))
    }

    #[test]
    fn batches_come_in_order_with_a_short_last_one() {
        let loader = Arc::new(Loader::new(counting(10), None, 0));
        let order: Vec<usize> = (0..10).rev().collect();
        let batches: Vec<Batch> = Feed::new(loader, order, 4, 0, None, 2).collect();
        assert_eq!(batches.len(), 3);
        assert_eq!(batches[2].labels, [1, 0]);
        // Sample 9 starts at value 9 · 20 = 180.
        assert_eq!(batches[0].x[0], 180.0 * 0.5);
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let loader = augmented(counting(23));
        let order: Vec<usize> = (0..23).map(|i| (i * 7) % 23).collect();
        let run = |threads| -> Vec<Batch> {
            Feed::new(loader.clone(), order.clone(), 5, 0, Some(3), threads).collect()
        };
        let inline = run(0);
        assert_eq!(run(1), inline);
        assert_eq!(run(3), inline);
        // Another epoch draws other transforms.
        let other: Vec<Batch> =
            Feed::new(loader.clone(), order.clone(), 5, 0, Some(4), 2).collect();
        assert_ne!(other, inline);
    }

    #[test]
    fn a_feed_resumes_mid_pass_and_can_be_dropped_early() {
        let loader = augmented(counting(12));
        let order: Vec<usize> = (0..12).collect();
        let all: Vec<Batch> = Feed::new(loader.clone(), order.clone(), 4, 0, Some(0), 2).collect();
        let rest: Vec<Batch> = Feed::new(loader.clone(), order.clone(), 4, 1, Some(0), 2).collect();
        assert_eq!(rest, all[1..]);
        let mut feed = Feed::new(loader, order, 1, 0, Some(0), 2);
        assert!(feed.next().is_some());
        drop(feed);
    }
}
