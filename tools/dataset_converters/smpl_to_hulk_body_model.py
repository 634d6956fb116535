"""Build the mesh task's ``body_model.npz`` from SMPL: ``python tools/dataset_converters/smpl_to_hulk_body_model.py
--smpl SMPL_NEUTRAL.pkl --data-dir DIR --out data/smpl/body_model.npz``.

Inputs (licensed or third-party, never shipped with hulk_mm):

* ``--smpl``: the SMPL neutral model, a chumpy-free ``.pkl`` that ``smplx.SMPL`` reads (official Hulk uses
  ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` from the SMPLify site; strip its chumpy objects first, e.g. with
  smplx's ``tools/clean_ch.py``, or use the SMPL site's Python release);
* ``--data-dir``: the folder holding GraphCMR's ``mesh_downsampling.npz``, METRO's ``J_regressor_h36m_correct.npy``
  and FastMETRO's ``smpl_1723_faces.npy``, ``smpl_1723_edges.npy``, ``smpl_431_adjmat_{indices,values,size}.pt``,
  e.g. ``core/data/datasets/images/smpl_data_tools/smpl_modeling/data/`` of the official Hulk repository, which
  ships all of them.

The output has the layout of SynthHuman's ``mesh/body_model.npz`` (``hulk_mm.datasets.synthetic.mesh_model``) for
6890 / 1723 / 431 vertices: set the mesh pathway's ``body_model=`` to it. The arrays are those the official code
builds at run time (template = SMPL turned by 3.1416 about x, H3.6M-17 regressor rows mapped to the 14 evaluation
joints, its pelvis row, GraphCMR up/down-sampling, FastMETRO faces / edges / adjacency); the logic lives in
``hulk_mm.models.body_model.smpl_body_model``.
"""
import argparse
import os
import os.path as osp

import numpy as np

from hulk_mm.models.body_model import smpl_body_model


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--smpl', required=True, help='SMPL neutral model file (.pkl read by smplx.SMPL)')
    parser.add_argument('--data-dir', required=True, help='folder of the GraphCMR / METRO / FastMETRO files')
    parser.add_argument('--out', required=True, help='output .npz')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    assets = smpl_body_model(args.smpl, args.data_dir)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **assets)
    counts = {k: len(assets[k]) for k in ('template', 'template_intermediate', 'template_coarse')}
    print(f'wrote {args.out}: vertices fine / intermediate / coarse = {counts["template"]} / '
          f'{counts["template_intermediate"]} / {counts["template_coarse"]}, {len(assets["joint_regressor"])} joints')


if __name__ == '__main__':
    main()
