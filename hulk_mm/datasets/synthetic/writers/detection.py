"""CrowdHuman ``.odgt`` + ``id_hw`` files."""
import json
import os.path as osp

from .base import TaskWriter, _dump_json, _xywh, image_name

MIN_DET_VISIBLE_FRACTION = 0.15  # below: extra.ignore = 1
MIN_DET_HEIGHT = 12  # px of visible box; below: extra.ignore = 1


class DetectionWriter(TaskWriter):
    """CrowdHuman ``detection/annotation_{split}.odgt`` and ``detection/id_hw_{split}.json``.

    ``ID`` is the image stem, so ``CrowdHumanDataset(data_prefix=dict(img='images/<split>/'))`` finds
    ``images/<split>/<ID>.jpg``; pass ``extra_ann_file=<DIR>/detection/id_hw_<split>.json`` (mmdet 3.3 loads it
    as given, not under ``data_root``) so that no image has to be decoded to learn its size. ``fbox`` is the amodal full body (may extend beyond the image, as in
    CrowdHuman), ``vbox`` the visible pixels, ``hbox`` the head."""

    name = 'detection'

    def image_record(self, scene, split, image_id, jpeg):
        boxes = []
        for person in scene.persons:
            if person.box_visible is None:
                continue
            vbox = person.box_visible
            ignore = (person.visible_fraction < MIN_DET_VISIBLE_FRACTION or vbox[3] - vbox[1] < MIN_DET_HEIGHT)
            hx, hy = (person.box_head[0] + person.box_head[2]) / 2, (person.box_head[1] + person.box_head[3]) / 2
            head_in_image = 0 <= hx < scene.camera.width and 0 <= hy < scene.camera.height
            boxes.append(dict(
                tag='person', fbox=_xywh(person.box_full, 0), vbox=_xywh(vbox, 0), hbox=_xywh(person.box_head, 1),
                head_attr=dict(ignore=int(not head_in_image or person.head_visible_fraction < 0.3),
                               occ=int(person.head_visible_fraction < 0.9), unsure=0),
                extra=dict(box_id=len(boxes), occ=int(person.occlusion > 0.05), ignore=int(ignore))))
        height, width = scene.image.shape[:2]
        return dict(ID=image_name(image_id)[:-4], gtboxes=boxes, hw=[height, width])

    def finalize(self, records):
        files = {}
        for split, recs in records.items():
            name = f'detection/annotation_{split}.odgt'
            with open(osp.join(self.out_dir, name), 'w') as f:
                for rec in recs:
                    f.write(json.dumps(dict(ID=rec['ID'], gtboxes=rec['gtboxes']), separators=(',', ':')) + '\n')
            boxes = [b for rec in recs for b in rec['gtboxes']]
            files[name] = dict(images=len(recs), boxes=len(boxes),
                               ignored=sum(b['extra']['ignore'] for b in boxes))
            name = f'detection/id_hw_{split}.json'
            _dump_json(osp.join(self.out_dir, name), {rec['ID']: rec['hw'] for rec in recs})
            files[name] = dict(images=len(recs))
        return files
