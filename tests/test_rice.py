"""Integration on the real rice photos (480×640 JPEGs, 4 labels, empty variety/age) from ../shared/data/rice."""
import json
from pathlib import Path

import pandas as pd

from paddy.ensemble import ensemble
from paddy.spec import load
from paddy.train import Settings, train


def test_rice_photos_end_to_end(rice):
    # the competition's own recipe shape, scaled down: squish the portrait photos, then a rectangle
    exp = load('convnext_small_rect',
               ['arch=test_convnext', 'pretrained=False', 'item_size=(128,96)', 'aug_size=(64,48)',
                                       'epochs=1', 'bs=16'])
    m = train(exp, Settings(data=rice))
    assert m['vocab'] == ['bacterial_leaf_blight', 'blast', 'brown_spot', 'tungro']
    assert m['n_train'] + m['n_valid'] == 120 and m['n_valid'] == 24
    assert json.loads(Path(f"models/{m['run']}.json").read_text())['experiment']['item_size'] == [128, 96]
    ensemble(name='rice', data=rice)
    sub, sample = pd.read_csv('submissions/rice.csv'), pd.read_csv(rice / 'sample_submission.csv')
    assert sub.image_id.tolist() == sample.image_id.tolist() and len(sub) == 20
    assert set(sub.label) <= set(m['vocab'])
