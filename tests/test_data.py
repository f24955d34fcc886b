import numpy as np
import pytest

from pfami.data import (DataError, SPLIT_NAMES, digits_pixels, fingerprint, load_dataset, load_digits_images,
                        load_image_folder, load_splits, make_splits, records_of, save_splits)
from tests.conftest import modules_imported_by, write_random_images

SIZES = {"members": 30, "holdout": 20}


def test_splits_are_disjoint_sized_and_deterministic():
    splits = make_splits(400, SIZES, seed=3)
    assert list(splits) == list(SPLIT_NAMES)
    every_index = [index for indices in splits.values() for index in indices]
    assert len(every_index) == len(set(every_index)) == 3 * 50
    assert all(len(splits[name]) == (30 if name.endswith("members") else 20) for name in SPLIT_NAMES)
    assert splits == make_splits(400, SIZES, seed=3)
    assert splits != make_splits(400, SIZES, seed=4)


def test_splits_larger_than_the_data_are_refused():
    with pytest.raises(DataError, match="lower splits.members"):
        make_splits(149, SIZES, seed=0)


def test_split_file_refuses_other_data(tmp_path):
    images = np.zeros((200, 1, 4, 4), np.float32)
    splits = make_splits(200, SIZES, seed=1)
    save_splits(tmp_path / "splits.json", splits, fingerprint(images), len(images))
    assert load_splits(tmp_path / "splits.json", images) == splits
    changed = images.copy()
    changed[5, 0, 1, 1] = 0.5
    with pytest.raises(DataError, match="different data"):
        load_splits(tmp_path / "splits.json", changed)


def test_records_of_puts_members_first_and_limits_each_part():
    images = np.arange(200, dtype=np.float32).reshape(200, 1, 1, 1)
    splits = make_splits(200, SIZES, seed=2)
    record_ids, records, is_member = records_of(images, splits, "shadow", attacked_per_part=5)
    assert record_ids.tolist() == splits["shadow_members"][:5] + splits["shadow_holdout"][:5]
    assert records[:, 0, 0, 0].tolist() == record_ids.tolist()
    assert is_member.tolist() == [True] * 5 + [False] * 5


def test_digits_are_upsampled_and_scaled():
    images = load_digits_images(16)
    assert images.shape == (1797, 1, 16, 16) and images.dtype == np.float32
    assert images.min() == -1.0 and 0.99 < images.max() <= 1.0


def test_digits_are_scikit_learns_read_without_importing_it():
    from sklearn.datasets import load_digits

    pixels = digits_pixels()
    assert pixels.dtype == np.float64
    np.testing.assert_array_equal(pixels, load_digits().images)
    # Every model step on the digits loads them; importing scikit-learn would cost it about 0.6 CPU-s.
    assert "sklearn" not in modules_imported_by("from pfami.data import load_digits_images; load_digits_images(16)")


def test_image_folder_grey_and_rgb_resized_to_square(tmp_path):
    write_random_images(tmp_path / "rgb" / "nested", [(20, 30), (24, 24)], "RGB")
    rgb = load_image_folder(tmp_path / "rgb", image_size=16, channels=3)
    assert rgb.shape == (2, 3, 16, 16) and -1 <= rgb.min() and rgb.max() <= 1
    grey = load_image_folder(tmp_path / "rgb", image_size=8, channels=1)
    assert grey.shape == (2, 1, 8, 8)


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "missing", 16, 3)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no PNG/JPEG"):
        load_image_folder(tmp_path / "empty", 16, 3)
    write_random_images(tmp_path / "broken", [(16, 16)])
    (tmp_path / "broken" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.png: cannot read image"):
        load_image_folder(tmp_path / "broken", 16, 3)
    write_random_images(tmp_path / "mixed", [(16, 16), (20, 20)])
    with pytest.raises(DataError, match="image_1.png: image is 20x20 .* data.resize is false"):
        load_image_folder(tmp_path / "mixed", 16, 3, resize=False)


def test_load_dataset_refuses_colour_digits():
    with pytest.raises(DataError, match="data.channels"):
        load_dataset({"source": "digits", "image_size": 16, "channels": 3})
