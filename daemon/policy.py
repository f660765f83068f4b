"""Two policies for several annotators per text, each an object with one verb (small-text's habit):

- :class:`ConsensusPolicy` ``.labels``: the label each text is trained on — majority vote, or cleanlab's CROWDLAB over
  K-fold out-of-sample probabilities (``AL_CONSENSUS``); with ActiveLab the held-out probabilities are kept for
  the query.
- :class:`ActiveLabPolicy` ``.query``: one score for labelled and unlabelled texts together; the lowest fill the batch,
  as new texts or as one more label for a labelled text while the labels asked for it stay within
  ``AL_MAX_ANNOTATIONS`` and enough team members have not labelled it yet.

They read the journal and the learner and write nothing but ``state.consensus``; the daemon does the I/O.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from daemon.answers import encode
from daemon.batches import QueryResult
from daemon.config import Settings
from daemon.consensus import Pick, activelab_scores, crowdlab, lowest
from daemon.learner import Learner
from daemon.state import RunState


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """A round's votes (class indices) and out-of-sample probabilities of every labelled text."""

    votes: dict[int, list[tuple[str, int]]]
    proba: np.ndarray


class ConsensusPolicy:
    """The labels to train on, from every answer journaled."""

    def __init__(self, settings: Settings, labels: list[str]) -> None:
        self.settings = settings
        self.label_set = labels

    def labels(self, state: RunState, learner: Learner, round_number: int) -> tuple[dict[int, int], HeldOut | None]:
        """Majority vote; with crowdlab or ActiveLab also K-fold out-of-sample probabilities for every labelled text
        (returned for the query), and with crowdlab CROWDLAB's consensus. Records the method in ``state.consensus``."""
        settings = self.settings
        y = {i: encode(label, self.label_set) for i, label in state.training_labels().items()}
        state.consensus = {"method": "majority", "round": round_number}
        if not (settings.activelab or settings.crowdlab) or len(set(y.values())) < 2:
            return y, None
        votes = {i: [(who, self.label_set.index(label)) for who, label in given] for i, given in state.votes().items()}
        held_out = HeldOut(votes, learner.out_of_sample_proba(y, settings.consensus_folds, round_number))
        if settings.crowdlab:
            found = crowdlab(votes, held_out.proba)
            y = found.labels
            state.consensus = {
                "method": found.method,
                "round": round_number,
                "labels": {str(i): self.label_set[c] for i, c in y.items()} if found.method == "crowdlab" else {},
                "annotator_quality": found.annotator_quality,
            }
        return y, held_out


class ActiveLabPolicy:
    """The next batch from ActiveLab's scores: new texts and relabel requests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def query(
        self, size: int, held_out: HeldOut, learner: Learner, state: RunState, team: set[str]
    ) -> tuple[QueryResult, list[Pick]]:
        """The ``size`` lowest-scoring texts: new ones (with the model's guess) and relabel picks."""
        settings = self.settings
        unlabelled = np.setdiff1d(learner.unlabelled_indices(), np.fromiter(state.reserved_indices(), np.int64))
        proba = learner.pool_proba()
        labelled_scores, pool_scores = activelab_scores(held_out.votes, held_out.proba, proba[unlabelled])
        need = settings.annotators_per_record
        requested = state.relabel_requests()

        def may_ask_again(index: int, given: list) -> bool:
            # the cap counts the votes and the labels asked for (first record and relabel requests): a request
            # answered by someone who had labelled the text already only replaces their vote; and enough members
            # of the workspace must not have labelled the text yet, or the relabel record would wait forever
            asked = need * (2 + requested[index])
            fresh = team - {who for who, _ in given}
            return max(asked, len(given) + need) <= settings.max_annotations and len(fresh) >= need

        may = {i for i, given in held_out.votes.items() if may_ask_again(i, given)}
        picks = lowest(labelled_scores, unlabelled, pool_scores, size, may)
        new = [p for p in picks if not p.relabel]
        result = QueryResult.guessed([p.index for p in new], proba, [p.score for p in new])
        return result, [p for p in picks if p.relabel]
