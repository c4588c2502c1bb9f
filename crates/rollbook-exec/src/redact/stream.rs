//! Redaction of a stream that arrives in pieces: a secret split across two writes or two
//! lines is masked as if the whole text had been redacted at once.

use super::{MASK, Redactor};

/// Redacts a stream of text. Text that could be the start of a secret is held back until
/// what follows decides it (or the stream ends); everything else is given back at once, so a
/// live display only waits when the output really looks like the beginning of a secret. Not
/// `Debug`: what it holds back may be the start of a secret.
pub struct StreamRedactor {
    redactor: Redactor,
    /// Text not given back yet.
    pending: String,
    /// The first bytes of `pending` that belong to a mask already given back.
    covered: usize,
}

impl StreamRedactor {
    /// A stream redacted by `redactor`.
    pub fn new(redactor: Redactor) -> Self {
        StreamRedactor {
            redactor,
            pending: String::new(),
            covered: 0,
        }
    }

    /// Takes the next piece of the stream; answers the redacted text that can be written now.
    pub fn push(&mut self, text: &str) -> String {
        self.pending.push_str(text);
        let decided = self.redactor.undecided_from(&self.pending);
        self.release(decided)
    }

    /// The end of the stream: the rest, redacted.
    pub fn finish(&mut self) -> String {
        let all = self.pending.len();
        self.release(all)
    }

    /// Gives back `pending[..cut]` redacted. No form that is not wholly inside `pending`
    /// starts before `cut`, so every mask that begins there is known; one that goes on past
    /// `cut` is written now and its end remembered in `covered`.
    fn release(&mut self, cut: usize) -> String {
        if cut == 0 {
            return String::new();
        }
        let mut out = String::with_capacity(cut);
        let mut at = 0;
        let mut covered = 0;
        for (start, end) in self.redactor.spans(&self.pending, self.covered) {
            if start >= cut {
                break;
            }
            out.push_str(&self.pending[at..start]);
            // A mask that began in an earlier piece has been written already.
            if !(start == 0 && self.covered > 0) {
                out.push_str(MASK);
            }
            if end > cut {
                covered = end - cut;
                at = cut;
                break;
            }
            at = end;
        }
        out.push_str(&self.pending[at..cut]);
        self.pending.drain(..cut);
        self.covered = covered;
        out
    }
}
